"""The Dockerfile (no Docker engine here, so it is parsed) and the Makefile agree on one install
path and one command; the image runs unprivileged, keeps its data in a volume, and carries no
secret."""

from __future__ import annotations

import json
import re

import yaml
from dockerfile_parse import DockerfileParser

from harness.paths import REPO


def instructions() -> list[tuple[str, str]]:
    parser = DockerfileParser(str(REPO / "Dockerfile"))
    return [(i["instruction"], i["value"]) for i in parser.structure
            if i["instruction"] != "COMMENT"]


def values(name: str) -> list[str]:
    return [value for instruction, value in instructions() if instruction == name]


def make_recipe(target: str) -> list[list[str]]:
    """The command lines of a Makefile target, its `$(VAR)` references expanded."""
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(.*)$", text, re.M))

    def expand(line: str) -> str:
        while (found := re.search(r"\$\((\w+)\)", line)) is not None:
            line = line.replace(found[0], variables[found[1]])
        return line

    block = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.M)
    assert block, f"no recipe for make {target}"
    return [expand(line.strip()).split() for line in block[1].splitlines()]


def test_installs_through_make_only():
    runs = values("RUN")
    assert "make install" in runs, "the image installs with the make target of a workstation"
    assert not any("pip install" in run for run in runs), "dependencies come from make only"


def test_command_is_the_recipe_of_make_run():
    # `make run` = `make install` (done at build time) + its recipe; exec form, so that
    # `docker stop` signals the bot itself rather than a make or a shell in between.
    assert make_recipe("run") == [json.loads(values("CMD")[-1])]
    assert instructions()[-1][0] == "CMD"


def test_runs_as_non_root_with_a_writable_data_volume():
    steps = instructions()
    names = [name for name, _ in steps]
    users = values("USER")
    assert users and users[-1] not in ("root", "0")
    assert names.index("USER") < steps.index(("RUN", "make install")) < names.index("CMD")
    assert values("WORKDIR") == ["/app"] and values("VOLUME") == ['["/app/data"]']
    # The volume's folder exists in the image, owned by the user: a named volume copies it.
    assert any(f"install -d -o {users[-1]} -g {users[-1]} /app /app/data" in run
               for run in values("RUN"))
    assert any(f"--chown={users[-1]}:{users[-1]}" in copy for copy in values("COPY"))


def test_healthcheck_asks_the_bot():
    (check,) = values("HEALTHCHECK")
    options, command = check.split("CMD", 1)
    assert json.loads(command) == [".venv/bin/python", "-m", "bot", "--health"]
    assert "--interval=" in options and "--start-period=" in options


def test_no_secret_is_baked_into_the_image():
    for name, value in instructions():
        if name in ("ENV", "ARG"):
            assert not re.search(r"TOKEN\s*=", value), f"{name} {value}: secrets come from -e"
    config = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    tokens = [config["vk"]["token"], config["vk"]["post_token"], config["telegram"]["token"]]
    assert all(re.fullmatch(r"\$\{[A-Z_]+\}", t) for t in tokens), tokens


def test_dockerignore_keeps_host_files_out_of_the_image():
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    for path in (".venv/", "data/", ".git/"):  # host venv paths, runtime data, history
        assert path in ignored


def test_make_install_pins_torch_through_the_constraints_file():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "--constraint constraints.txt" in makefile
    constraints = (REPO / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==\d+\.\d+\.\d+$", constraints, re.M)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_compose_runs_two_bots_on_postgresql_behind_a_proxy_with_no_secret_written():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["db"]["image"].startswith("postgres:")
    bots = [services[name] for name in ("bot1", "bot2")]
    for bot in bots:
        assert bot["build"] == "." and bot["command"][1:] == [
            "-m", "bot", "--config", "deploy/config.yaml"]
        assert bot["depends_on"]["db"]["condition"] == "service_healthy"
        for name, value in bot["environment"].items():
            assert "${" in value, f"{name} must come from the environment, not the file"
    caddyfile = (REPO / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    assert "bot1:8443 bot2:8443" in caddyfile and "lb_try_duration" in caddyfile
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    config = yaml.safe_load((REPO / "deploy" / "config.yaml").read_text(encoding="utf-8"))
    assert config["storage"]["url"] == "${DATABASE_URL}"
    assert config["telegram"]["webhook"] == {"url": "${WEBHOOK_URL}", "listen": "0.0.0.0:8443",
                                             "secret": "${TELEGRAM_WEBHOOK_SECRET}"}
