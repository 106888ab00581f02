"""The documentation stays true to the tree: README.md and docs/architecture.md link only to files
that exist in the repository, name only `scimgate` commands and options that exist, list exactly
the GATEWAY_* settings gateway/config.py reads, and the architecture document names every package
the code has.

These read the documents as a newcomer would follow them; no server or database is needed.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.config import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LDAP = ROOT / "docs" / "ldap.md"
DOCS = (README, ARCHITECTURE, LDAP)

_FENCE = re.compile(r"^```.*?$(.*?)^```", re.S | re.M)
_SPAN = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_SETTING = re.compile(r"\bGATEWAY_[A-Z0-9_]+\b")
# A command line starts at `scimgate` (also `.venv/bin/scimgate`) or at `scripts/serve`, which
# passes its arguments to `scimgate serve`.
_COMMAND = re.compile(r"(?:(?<=[\s`(/$])|^)(scimgate|scripts/serve)(?=\s|$)")
# Where a command line ends inside a code line: a pipe, a redirection, a comment, a separator.
_END = {"|", ">", ">>", "<", "&&", "||", ";", "#", "&"}
_REPO_PATH = re.compile(
    r"^(?:gateway|connectors|mappings|tests|bench|scripts|docs)/[\w./-]*[\w/]$|^wsgi\.py$"
)


def _read(doc: Path) -> str:
    assert doc.exists(), f"{doc.relative_to(ROOT)} is missing"
    return doc.read_text(encoding="utf-8")


def _code(text: str) -> list[str]:
    """Every line of code in a Markdown text: fenced block lines and inline code spans."""
    pieces = []
    for block in _FENCE.findall(text):
        pieces.extend(block.splitlines())
    prose = _FENCE.sub("", text)
    # In a table cell, a pipe inside code is written `\|`.
    pieces.extend(span.replace("\\|", "|") for span in _SPAN.findall(prose))
    return pieces


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    prose = _FENCE.sub("", _read(doc))
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", prose, re.M)}


# --- links ----------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_relative_link_resolves_to_a_file_in_the_repository(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(_FENCE.sub("", _read(doc))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve() if path else doc
        if not resolved.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert not broken, f"{doc.name} has broken links:\n" + "\n".join(broken)


def test_the_readme_links_to_the_architecture_document() -> None:
    assert "](docs/architecture.md)" in _read(README)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_path_named_in_code_exists(doc: Path) -> None:
    missing = [
        piece
        for line in _code(_read(doc))
        for piece in [line.strip()]
        if _REPO_PATH.match(piece) and not (ROOT / piece).exists()
    ]
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


# --- commands -------------------------------------------------------------------------------


def _command_lines(text: str) -> list[list[str]]:
    """The words after each `scimgate` in the code of `text`, up to the end of that command."""
    found = []
    for line in _code(text):
        for match in _COMMAND.finditer(line):
            rest = line[match.end() :]
            try:
                words = shlex.split(rest, comments=False)
            except ValueError:  # an unbalanced quote in a shortened example
                words = rest.split()
            if match.group(1) == "scripts/serve":
                words = ["serve", *words]
            command = []
            for word in words:
                if word in _END or word.startswith("#"):
                    break
                command.append(word)
            found.append(command)
    return found


def _resolve(words: list[str]) -> tuple[list[tuple[str, click.Command]], list[str], str | None]:
    """Walk `words` down the `scimgate` command tree. Returns the commands reached (a word may
    name several: `list|show`), the option words that follow, and a problem if any."""
    reached: list[tuple[str, click.Command]] = [("scimgate", main)]
    options: list[str] = []
    descending = True
    for word in words:
        word = word.strip("[](),")
        if word.startswith("--"):
            options.append(word.split("=", 1)[0])
            continue
        if not descending or not re.fullmatch(r"[a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)*", word):
            descending = False  # an argument (a name, an e-mail, ORG, ID): no more commands
            continue
        groups = [(name, cmd) for name, cmd in reached if isinstance(cmd, click.Group)]
        if not groups:
            descending = False
            continue
        below = []
        for alternative in word.split("|"):
            for name, group in groups:
                sub = group.commands.get(alternative)
                if sub is None:
                    return reached, options, f"`{name} {alternative}` is not a command"
                below.append((f"{name} {alternative}", sub))
        reached = below
    return reached, options, None


def _named_commands(doc: Path) -> list[tuple[str, list[tuple[str, click.Command]], list[str]]]:
    out = []
    for words in _command_lines(_read(doc)):
        if not words:
            continue  # `scimgate` alone, e.g. "with the venv active"
        if not re.fullmatch(r"[a-z][a-z0-9-]*(?:\|[a-z][a-z0-9-]*)*|--[a-z-]+", words[0]):
            continue  # not a command line: `scimgate <noreply@localhost>`
        reached, options, problem = _resolve(words)
        assert problem is None, f"{doc.name}: `scimgate {' '.join(words)}`: {problem}"
        out.append((" ".join(words), reached, options))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_scimgate_command_named_exists_and_answers_help(doc: Path) -> None:
    commands = _named_commands(doc)
    runner = CliRunner()
    helped = set()
    for _line, reached, _options in commands:
        for name, _cmd in reached:
            if name in helped:
                continue
            helped.add(name)
            result = runner.invoke(main, [*name.split()[1:], "--help"])
            assert result.exit_code == 0, f"`{name} --help` failed: {result.output}"
            assert "Usage:" in result.output
    if doc is README:
        assert len(helped) > 20, helped  # the parser found the Commands table


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_option_named_belongs_to_its_command(doc: Path) -> None:
    wrong = []
    for line, reached, options in _named_commands(doc):
        for option in options:
            for name, cmd in reached:
                known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
                if option not in known | {"--help"}:
                    wrong.append(f"`{line}`: `{name}` has no option {option}")
    assert not wrong, f"{doc.name}:\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    "wanted",
    [["serve", "--no-demo"], ["admin", "create", "--password-stdin"], ["db", "upgrade"]],
    ids=" ".join,
)
def test_the_readme_shows_the_first_hour_commands(wanted: list[str]) -> None:
    """What a newcomer needs before the tour works: a gateway without the demo, the first console
    account from a script, the schema before the CLI is used without `serve`."""
    words_wanted = [w for w in wanted if not w.startswith("--")]
    flags = [w for w in wanted if w.startswith("--")]
    assert any(
        words[: len(words_wanted)] == words_wanted and all(f in words for f in flags)
        for words in _command_lines(_read(README))
    ), f"the README never shows `scimgate {' '.join(wanted)}`"


def _complete(command: str) -> bool:
    """Whether a shell command is whole: no trailing backslash, no quote left open."""
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # "No closing quotation": the quoted text goes on on the next line
        return False
    return True


def _shell_commands(text: str) -> list[str]:
    """The commands of the `sh` and `console` blocks, in order, as a shell would read them (a
    console block's output lines, which do not start with `$ `, are left out)."""
    commands = []
    for match in re.finditer(r"^```(sh|console)\n(.*?)^```", text, re.S | re.M):
        console = match.group(1) == "console"
        pending: str | None = None
        for line in match.group(2).splitlines():
            if pending is not None:
                pending = pending[:-1] + line if pending.endswith("\\") else pending + "\n" + line
            elif not console:
                pending = line
            elif line.startswith("$ "):
                pending = line[2:]
            else:
                continue
            if _complete(pending):
                commands.append(pending)
                pending = None
    return commands


def test_every_shell_variable_in_the_readme_is_set_before_it_is_used() -> None:
    """A reader pastes the commands in order: `$BASE` must have been set by an earlier line."""
    defined: set[str] = set()
    undefined = []
    for command in _shell_commands(_read(README)):
        used = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", command)
        undefined += [f"${name} in `{command[:60]}`" for name in used if name not in defined]
        defined |= set(re.findall(r"(?:^|[\s;(])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=", command))
    assert not undefined, "the README uses shell variables it never sets:\n" + "\n".join(undefined)


# --- settings -------------------------------------------------------------------------------


def test_the_readme_names_exactly_the_settings_the_gateway_reads() -> None:
    documented = set(_SETTING.findall(_read(README)))
    read = {s.name for s in SETTINGS}
    assert documented - read == set(), "the README names settings config.py does not read"
    assert read - documented == set(), "config.py reads settings the README does not name"


def test_the_readme_configuration_table_is_the_one_config_markdown_prints() -> None:
    printed = CliRunner().invoke(main, ["config", "--markdown"])
    assert printed.exit_code == 0, printed.output
    table = [line for line in printed.output.splitlines() if line.startswith("|")]
    readme = _read(README).splitlines()
    start = readme.index(table[0])
    assert readme[start : start + len(table)] == table, (
        "the README's configuration table differs from `scimgate config --markdown`; "
        "paste its output"
    )


# --- the architecture document ----------------------------------------------------------------


def _packages() -> list[str]:
    found = []
    for top in ("gateway", "connectors", "mappings"):
        for init in sorted((ROOT / top).rglob("__init__.py")):
            package = init.parent.relative_to(ROOT).as_posix()
            if "migrations" not in package:
                found.append(package)
    return found


def test_the_architecture_document_has_a_paragraph_per_package() -> None:
    text = _read(ARCHITECTURE)
    missing = [p for p in _packages() if f"`{p}/`" not in text]
    assert not missing, f"docs/architecture.md says nothing of the packages {missing}"


def test_the_architecture_document_covers_what_the_issues_ask() -> None:
    headings = _anchors(ARCHITECTURE)
    for wanted in (
        "packages",
        "data-flow",
        "the-walk-of-a-scim-post",
        "the-walk-of-an-ldap-deprovision",
        "the-deprovisioning-guard",
        "multi-tenancy",
        "storage",
        "availability-model",
    ):
        assert wanted in headings, f"docs/architecture.md has no section #{wanted}"


# --- the Quick tour, replayed -------------------------------------------------------------------


def _tour_script(commands: list[str], base: str, token: str, url: str) -> str:
    """The Quick tour's commands as one bash script, as a reader pastes them: the values the
    README shows for what `serve` printed (and for Ada's id) replaced by this run's, each command
    followed by a marker line with its exit status."""
    lines = ['cd "$TOUR_DIR"']
    for n, command in enumerate(commands):
        command = command.replace("http://127.0.0.1:8080", url)
        if command.startswith("scripts/serve"):
            continue  # already running
        if command.startswith("scimgate admin create") and "--password-stdin" not in command:
            continue  # asks for the password on a terminal
        if command.startswith("BASE="):
            command = f"BASE={base}"
        elif command.startswith("TOKEN="):
            command = f"TOKEN={token}"
        elif command.startswith("ADA="):
            command = (
                'ADA=$(python3 -c \'import json,sys; print(json.load(open("user.json"))["id"])\')'
            )
        if "data/mail" in command:
            # The worker writes the mail within its poll interval; a reader is slower than that.
            lines.append("for i in $(seq 120); do ls data/mail/*.eml && break; sleep 0.5; done")
            command = re.sub(r"data/mail/[\w-]+\.eml", "data/mail/*.eml", command)
        command = command.replace("/run/secrets/scimgate-admin", "admin-password")
        lines.append(f"echo '>>> {n}'")
        if "$BASE/Users" in command:
            command = f"{command} | tee user.json"
        lines.append(command)
        lines.append(f'echo "<<< {n} $?"')
    return "\n".join(lines) + "\n"


def test_the_quick_tour_works_as_written_on_a_fresh_data_dir(tmp_path: Path) -> None:
    """Every command of the Quick tour, pasted in order against `scimgate serve` on an empty
    data directory, succeeds, and a newcomer sees what the README says: the invitation accepted
    with a fingerprint phrase, the member confirmed, the mapping applied."""
    import shutil
    import subprocess
    import sys

    from gateway_processes import Served

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (the tour makes a public key with it)")
    text = _read(README)
    tour = text[text.index("## Quick tour") : text.index("\n## ", text.index("## Quick tour") + 5)]
    mapping = re.search(r"```yaml\n(.*?)```", tour, re.S)  # the file the reader saves
    if mapping:
        (tmp_path / "mapping.yaml").write_text(mapping.group(1))
    (tmp_path / "admin-password").write_text("a password long enough for the console\n")
    server = Served(tmp_path / "data")
    try:
        server.wait_ready(timeout=60)
        # serve's output is a pipe here, so the token is in data/demo-token, as the tour says.
        _banner, base, token = server.demo_settings()
        script = _tour_script(_shell_commands(tour), base, token, server.url)
        env = {
            **server.env,
            "TOUR_DIR": str(tmp_path),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        }
        done = subprocess.run(
            ["bash", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            errors="replace",  # a bad byte fails the assertions below, with the output shown
            timeout=300,
        )
    finally:
        server.stop()
    out = done.stdout + done.stderr
    statuses = re.findall(r"^<<< (\d+) (\d+)$", done.stdout, re.M)
    failed = [n for n, status in statuses if status != "0"]
    assert not failed, f"tour commands {failed} failed:\n{out}"
    assert len(statuses) >= 15, out  # the tour has its accept and confirm steps
    assert "You joined Demo" in out
    assert re.search(r"fingerprint phrase is [a-z]+(-[a-z]+){5}\.", out)
    assert re.search(r"ada@acme\.example\s+Ada Lovelace\s+user\s+confirmed\s+scim", out)
    assert "Stored the mapping and applied the Plan." in out
    assert "group.member_added" in out  # the group POST put Ada in Marketing
    assert "Created provider_admin ops@msp.example." in out
