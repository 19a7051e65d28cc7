"""Pieces shared by the three stages: config, database schema, corpus format, CLI errors, logs."""
