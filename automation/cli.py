"""`python -m automation`: every operation of the project as a command, and as a function.

    init --stack S [--from examples/F]     create a stack: local state, passphrase, its secrets
    config set [--secret] KEY [VALUE]      set one value (--secret: encrypted)
    validate [--stack S | --file F] [--json]  config check and resolved plan, offline
    preview | up | refresh [--stack S]     through the Automation API, live progress
    preview [--comment F] | up [--allow-replace SVC]  data changes first; up needs a fresh backup
    preview | up [--allow-upgrade SVC]     upgrade paths: unsafe image bumps of data refused
    destroy [--stack S] [--yes]            asks first; says what happens to the volumes
    lifecycle [--stack S | --file F | --all] [--within DAYS] [--json]  pins past (or near) end of support
    outputs [--stack S] [--show-secrets]
    release --out bundle.tar.gz [--all]    offline bundle: images, wheels, plugins
    setup bundle.tar.gz [--stack S]        verify, load it onto the stack's hosts, check image IDs
    backup --host H                        run the host's backup now
    backups --host H                       the host's archives, newest first, age and size
    restore --host H --archive FILE | --resume [--service S] [--identity KEY] [--dry-run] [--via V]
    drill --host H [--service S] | --due | --rules  restore drills: scratch volumes, checks, metrics

Exit codes: 0 success, 1 failure (config, operation), 2 the Pulumi CLI is missing,
64 the command line is wrong (an unknown option, a bad value).
Errors go to stderr; with --json, stdout also gets one JSON object {"error": {...}}.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, TextIO

from automation import validate as offline
from automation.lifecycle import LifecycleError, current_config, refuse_secrets_in_plain_text
from automation.preflight import (
    ArchiveAnnouncer,
    GuardOptions,
    add_guard_arguments,
    check_before_up,
    discard_plan,
    guard_options_from,
    guarded_preview,
)
from automation.progress import Progress, error_object
from automation.support import DEFAULT_WITHIN
from automation.workspace import (
    PROJECT_DIR,
    MissingCliError,
    StackOptions,
    cli_reason,
    open_stack,
    passphrase_from_env_or_prompt,
)
from stacks.config import ConfigError, StackConfig

OPERATIONS = ("preview", "up", "destroy", "refresh", "outputs")


def validate(
    stack: str = "dev",
    project_dir: Path = PROJECT_DIR,
    file: Path | None = None,
    require_secrets: bool = True,
) -> dict[str, Any]:
    """The resolved plan of a stack (or of any stack file), or `ConfigError` / `FileNotFoundError`."""
    return offline.describe(offline.load(project_dir, stack, file, require_secrets))


def volumes_on_destroy(config: StackConfig, done: bool = False) -> str:
    """What `destroy` does (or did) to the stateful volumes, as the data settings say."""
    if config.data.protect:
        if done:
            return "Stateful volumes were kept with their data: they are protected (data.protect is on)."
        return (
            "Stateful volumes are protected (data.protect is on): they stay with their data, "
            "with what they need (their host's Docker provider); everything else is destroyed."
        )
    if config.data.delete_on_destroy:
        if done:
            return "Stateful volumes were deleted with their data (data.delete-on-destroy is on)."
        return "Stateful volumes will be DELETED with their data (data.delete-on-destroy is on)."
    if done:
        return (
            "Stateful volumes were retained with their data (data.delete-on-destroy is off): "
            "remove them by hand if unwanted."
        )
    return "Stateful volumes are kept with their data (data.delete-on-destroy is off)."


def run_operation(
    operation: str,
    options: StackOptions,
    out: TextIO | None = None,
    json_lines: bool = False,
    yes: bool = False,
    show_secrets: bool = False,
    interactive: bool = False,
    err: TextIO | None = None,
    guard_options: GuardOptions | None = None,
) -> int:
    """Run one Pulumi operation on a stack; returns the exit code."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if options.config:  # plain text in the stack file: never a secret
        current = current_config(options.project_dir, options.stack)
        refuse_secrets_in_plain_text(list(options.config), options.stack, current)
    # `--config` values are validated as they will be: in place, before anything runs.
    config = offline.load(options.project_dir, options.stack, overrides=options.config)
    if options.config:
        err.write(
            f"note: --config writes plain text into Pulumi.{options.stack}.yaml: "
            f"{', '.join(sorted(options.config))}\n"
        )
    guard_options = guard_options or GuardOptions()
    comment = guard_options.comment
    if comment is not None and not comment.parent.is_dir():  # before a whole preview, not after
        raise FileNotFoundError(f"--comment {comment}: there is no folder {comment.parent}")
    if operation == "destroy" and not yes:
        if not interactive or json_lines:  # --json is for scripts: stdout holds JSON only
            why = "destroy needs --yes when not run from a terminal" + (
                " or with --json" if json_lines else ""
            )
            err.write(why + "\n")
            if json_lines:
                out.write(error_object("refused", why))
            return 1
        # The question on stderr (stdout may be a pipe of results); end of input is "no".
        err.write(f"Destroy every resource of stack {options.stack!r}? {volumes_on_destroy(config)} [y/N] ")
        err.flush()
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            err.write("nothing destroyed\n")
            return 1
    stack = open_stack(options, passphrase_from_env_or_prompt(interactive))
    if operation == "outputs":
        values = {
            k: (v.value if show_secrets or not v.secret else "[secret]") for k, v in stack.outputs().items()
        }
        out.write(json.dumps(values, indent=None if json_lines else 2, sort_keys=True, default=str) + "\n")
        return 0

    from pulumi.automation import errors as auto_errors

    if operation == "preview":
        return guarded_preview(stack, config, guard_options, out, json_lines, err)
    extra: dict[str, Any] = {}
    if operation == "up":
        allowed, extra = check_before_up(stack, config, guard_options, out, json_lines, err)
        if not allowed:
            return 1
    if operation == "destroy" and config.data.protect:
        extra["exclude_protected"] = True  # keep the protected volumes, destroy the rest
    progress = Progress(out=out, json_lines=json_lines)
    trace = None
    endpoint = config.deployment_traces.otlp_endpoint
    if endpoint and operation in ("up", "destroy"):
        from automation.traces import DeploymentTrace

        trace = DeploymentTrace(operation, options.stack, config.deployment_traces.service_name)
    ok = True
    try:
        getattr(stack, operation)(on_event=ArchiveAnnouncer(progress, out, json_lines), **extra)
    except auto_errors.CommandError as error:
        ok = False
        message = f"{operation} failed: {cli_reason(error)}"
        err.write(message + "\n")
        if json_lines:
            out.write(error_object("operation", message))
    finally:
        discard_plan(extra)
        if not json_lines:
            out.write(progress.render_summary())
        if operation == "destroy" and ok:  # with --json, a note for the reader: stderr
            (err if json_lines else out).write(volumes_on_destroy(config, done=True) + "\n")
        if trace is not None and endpoint:
            from automation.traces import export

            try:
                export(endpoint, trace.payload(progress, time.time(), ok))
            except OSError as error:
                err.write(f"could not send the deployment trace to {endpoint}: {error}\n")
    return 0 if ok and not progress.failures else 1


def release(
    out: Path,
    stack: str = "dev",
    all_images: bool = False,
    wheels: bool = True,
    project_dir: Path = PROJECT_DIR,
) -> Path:
    from automation import bundle

    config = offline.load(project_dir, stack)
    plugins = bundle.default_plugins_dir()
    return bundle.release(
        out,
        bundle.images_for(config, all_images),
        project_dir / "requirements.txt" if wheels else None,
        plugins if plugins.is_dir() else None,
    )


def setup(
    bundle_path: Path, stack: str = "dev", wheels: bool = True, project_dir: Path = PROJECT_DIR
) -> dict[str, Any]:
    from automation import bundle
    from automation.backup import Interrupted, signals_raise
    from automation.transport import DialStdioBridge, dial_command, key_dir_from_env
    from components.docker.host import HostArgs, SshTarget

    config = offline.load(project_dir, stack)
    # SIGTERM runs the cleanup too (as Ctrl-C does): the extracted bundle is as large as the bundle.
    try:
        with signals_raise(), contextlib.ExitStack() as bridges:
            hosts: dict[str, str] = {}
            for h in config.hosts:
                url = HostArgs(h.name, SshTarget(*h.ssh) if h.ssh else None).docker_host
                # An SSH host through the provider's own ssh command: its pinned host key.
                command = dial_command(config, h.name, key_dir_from_env(), stack)
                hosts[url] = bridges.enter_context(DialStdioBridge(command)) if command else url
            return bundle.setup(
                bundle_path, hosts, install_wheels=wheels, plugins_target=bundle.default_plugins_dir()
            )
    except (KeyboardInterrupt, Interrupted):
        raise bundle.BundleError(
            "setup was interrupted: what it had extracted is removed; images it had loaded stay "
            "(run setup again to finish)"
        ) from None


def backup(
    command: str,
    host: str,
    stack: str = "dev",
    file: Path | None = None,
    out: TextIO | None = None,
    project_dir: Path = PROJECT_DIR,
    **options: Any,
) -> None:
    """`backup`, `backups` or `restore` on one host (see automation/backup.py)."""
    from automation import backup as backups

    out = out if out is not None else sys.stdout
    config = offline.load(project_dir, stack, file, require_secrets=False)
    hb = backups.host_backup(config, host, stack)
    with backups.DockerCli.for_host(hb) as docker:
        if command == "backup":
            backups.run_backup(hb, docker, out)
            out.write(f"backup of host {host} done\n")
        elif command == "backups":
            out.write(backups.render_archives(hb, backups.list_archives(hb, docker, options.get("image"))))
        else:
            backups.restore(
                hb, options["archive"], docker, out, **{k: v for k, v in options.items() if k != "archive"}
            )


def drill_rules_of(config: StackConfig) -> str:
    """The drills' alert rules for this stack's hosts (components/homelab/drill.py)."""
    from components.homelab.drill import drill_rules, drill_watches
    from stacks.config_base import duration_seconds
    from stacks.plan import build_plan

    max_age = int(duration_seconds(config.data.restore_drills.max_age))
    return drill_rules(drill_watches(build_plan(config).services, max_age))


def run_drill_command(
    args: argparse.Namespace,
    out: TextIO,
    project_dir: Path = PROJECT_DIR,
    err: TextIO | None = None,
) -> int:
    """`drill`: 0 when every service's restore was verified, 1 when one was not."""
    from automation.drill import drill, drill_due

    err = err if err is not None else sys.stderr
    given = (args.service, args.archive, args.sample)
    if (args.due or args.rules) and any(v is not None for v in given):  # '' is given too
        which = "--due drills every due host's newest archive" if args.due else "--rules prints the rules"
        err.write(f"{which}: no --service, --archive or --sample\n")
        return 1
    config = offline.load(project_dir, args.stack, args.file, require_secrets=False)
    if args.rules:
        out.write(drill_rules_of(config))
        return 0
    if args.due:
        return 0 if drill_due(config, out, args.identity, args.helper_image) else 1
    options: dict[str, Any] = {"service": args.service, "archive": args.archive, "identity": args.identity}
    if args.sample is not None:
        options["sample"] = args.sample
    report = drill(config, args.host, out, image=args.helper_image, **options)
    return 0 if report.ok else 1


def _sample(text: str) -> int:
    """`drill --sample`: the bounds of data.restore-drills.sample (1..1000)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and 1000")
    return value


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:  # the text may hold a secret value: not quoted
        raise argparse.ArgumentTypeError("expected KEY=VALUE (no '=' found, or no key before it)")
    return key, value


# The command line is wrong (sysexits.h EX_USAGE): not argparse's 2, which says here that the
# Pulumi CLI is missing, so a script can tell the two apart.
USAGE_ERROR = 64


class UsageError(Exception):
    """argparse's error, raised instead of printed and exited, so `main` reports it like the
    others (stderr, and a JSON object with --json)."""

    def __init__(self, message: str, usage: str):
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


def _parser() -> argparse.ArgumentParser:
    first, _, rest = (__doc__ or "").partition("\n\n")
    parser: argparse.ArgumentParser = _Parser(
        prog="python -m automation",
        description=first,
        epilog=rest,  # the commands at a glance, the exit codes, where errors go
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_stack(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--stack", default="dev", type=_stack_name, help="stack name (Pulumi.<stack>.yaml); default dev"
        )
        return p

    p = sub.add_parser("init", help="create a stack: local state, passphrase secrets, its secrets asked")
    p.add_argument(
        "--stack", required=True, type=_stack_name, help="name of the new stack (Pulumi.<stack>.yaml)"
    )
    p.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="FILE",
        help="copy this stack file first (e.g. examples/single-host.yaml); default: the existing one",
    )
    p = sub.add_parser("config", help="set one config value of a stack")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    p = with_stack(config_sub.add_parser("set", help="set KEY (plain text, or encrypted with --secret)"))
    p.add_argument("key", metavar="KEY", help="config key, e.g. domain or server-ssh-key (homelab: implied)")
    p.add_argument(
        "value", metavar="VALUE", nargs="?", help="the value; without it, read from stdin or asked for"
    )
    p.add_argument("--secret", action="store_true", help="encrypt it with the stack's passphrase")
    p = with_stack(sub.add_parser("validate", help="check the config offline, print the plan"))
    p.add_argument("--json", action="store_true", help="the plan (or the error) as one JSON object")
    p.add_argument("--file", type=Path, help="validate this stack file instead (e.g. examples/apps.yaml)")
    p.add_argument(
        "--allow-missing-secrets", action="store_true", help="a template: named secrets need not be set yet"
    )
    for operation in OPERATIONS:
        p = with_stack(sub.add_parser(operation, help=f"pulumi {operation}"))
        what = (
            "the outputs as one JSON line" if operation == "outputs" else "one JSON object per step (CI logs)"
        )
        p.add_argument("--json", action="store_true", help=what + "; stdout holds JSON only")
        p.add_argument("--backend", help="backend URL (default: file://<project>/.pulumi-state)")
        p.add_argument(
            "--config",
            action="append",
            default=[],
            type=_key_value,
            metavar="KEY=VALUE",
            help="set a homelab: config value first (written as plain text to the stack file; "
            "secrets are refused: use `config set --secret`)",
        )
        p.add_argument("--yes", action="store_true", help="do not ask (destroy asks otherwise)")
        if operation in ("preview", "up"):
            add_guard_arguments(p, operation)
        if operation == "outputs":
            p.add_argument("--show-secrets", action="store_true", help="print secret outputs in clear")
    p = sub.add_parser("lifecycle", help="every pin's line and its end of support (offline)")
    which_pins = p.add_mutually_exclusive_group()
    which_pins.add_argument("--stack", type=_stack_name, help="the pins this stack's config registers")
    which_pins.add_argument("--file", type=Path, help="the pins this stack file registers")
    which_pins.add_argument(
        "--all", action="store_true", help="every pin of the code, whatever a config uses (the default)"
    )
    p.add_argument(
        "--within",
        type=_days,
        default=DEFAULT_WITHIN,
        metavar="DAYS",
        help=f"also fail when a line's support ends within DAYS (default {DEFAULT_WITHIN})",
    )
    p.add_argument("--on", type=_day, metavar="YYYY-MM-DD", help="judge as on this day (default today)")
    p.add_argument("--json", action="store_true", help="the report as one JSON object")
    p = with_stack(sub.add_parser("release", help="build an offline bundle"))
    p.add_argument("--out", required=True, type=Path, help="the bundle file to write (.tar.gz)")
    p.add_argument("--all", action="store_true", help="every image, not just the enabled services'")
    p.add_argument("--no-wheels", action="store_true", help="leave the Python wheels out")
    p = with_stack(sub.add_parser("setup", help="verify a bundle and load it onto the stack's hosts"))
    p.add_argument("bundle", type=Path, help="the bundle made by `release`")
    p.add_argument("--no-wheels", action="store_true", help="do not install the bundled wheels")
    host_help = "the host (hosts[].name) whose volumes to use"
    identity_help = "age identity file (the stack output backup-identity)"
    p = with_stack(sub.add_parser("backup", help="run a host's backup now"))
    p.add_argument("--host", required=True, help=host_help)
    p = with_stack(sub.add_parser("backups", help="list a host's archives with age and size"))
    p.add_argument("--host", required=True, help=host_help)
    p = with_stack(sub.add_parser("restore", help="restore a host's volumes from an archive"))
    p.add_argument("--host", required=True, help=host_help)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--archive", help="a file here, or the name of an archive in the host's directory")
    which.add_argument(
        "--resume",
        action="store_true",
        help="finish the restore that was interrupted on this host (its archive and --service)",
    )
    p.add_argument("--service", help="only this service's volumes")
    p.add_argument("--identity", type=Path, help=identity_help)
    p.add_argument("--dry-run", action="store_true", help="check the archive and show the plan only")
    p.add_argument(
        "--via",
        choices=("auto", "host", "helper"),
        default="auto",
        help="how the archive's files reach the volumes: host (this machine's tar writes beside "
        "each volume's directory: a local engine, as root), helper (a container of the helper "
        "image: any engine), auto (host when it can; default)",
    )
    p = with_stack(
        sub.add_parser("drill", help="restore a host's newest archive into scratch volumes and check it")
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--host", help="drill this host (hosts[].name)")
    which.add_argument(
        "--due", action="store_true", help="every host whose data.restore-drills interval has passed"
    )
    which.add_argument(
        "--rules", action="store_true", help="print the Prometheus alert rules of the drills (a rules file)"
    )
    p.add_argument("--service", help="only this service")
    p.add_argument(
        "--archive", help="this archive instead of the newest (a file here, or a name on the host)"
    )
    p.add_argument("--identity", type=Path, help=identity_help)
    p.add_argument(
        "--sample",
        type=_sample,
        help="files checksummed per volume, at least 1 (default: data.restore-drills.sample)",
    )
    for name in ("backup", "backups", "restore", "drill"):
        p = sub.choices[name]
        p.add_argument("--file", type=Path, help="use this stack file (e.g. a copy on a fresh machine)")
        if name != "backup":
            p.add_argument("--helper-image", help="image of the throwaway container (default: the engine's)")
    return parser


# The Pulumi service's rule for stack names (pulumi/pulumi's validateStackName:
# `^[a-zA-Z0-9-_.]{1,100}$`), which a file backend's `Pulumi.<stack>.yaml` needs too.
_STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _stack_name(text: str) -> str:
    if not _STACK_NAME.fullmatch(text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a stack name: 1-100 letters, digits, '-', '_' or '.' "
            "(it names Pulumi.<stack>.yaml)"
        )
    return text


def _days(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days (0 or more)")
    return int(text)


def _day(text: str) -> datetime.date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # fromisoformat takes 20260101 and 2026-W01-1
            raise ValueError(text)
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def run_lifecycle(args: argparse.Namespace, out: TextIO) -> int:
    """The support report of every pin (or of one config's); 1 when a line has ended or ends
    within --within days."""
    from automation import support

    today = args.on or datetime.date.today()
    if args.stack or args.file:
        config = offline.load(PROJECT_DIR, args.stack or "dev", args.file, require_secrets=False)
        pins = support.config_pins(config)
    else:
        pins = support.table_pins()
    rows = support.report(pins, today, args.within)
    render = support.render_json if args.json else support.render_text
    out.write(render(rows, today, args.within) + ("\n" if args.json else ""))
    return 1 if support.failing(rows) else 0


def _ask_secret(prompt: str) -> str:
    import getpass

    return getpass.getpass(prompt)


def _new_passphrase(interactive: bool) -> str | None:
    """The passphrase of a new stack: from the environment, or typed twice."""
    import getpass

    typed = interactive and "PULUMI_CONFIG_PASSPHRASE" not in os.environ
    passphrase = passphrase_from_env_or_prompt(interactive)
    if typed and passphrase is not None and getpass.getpass("The same passphrase again: ") != passphrase:
        raise LifecycleError("the two passphrases differ: nothing was created")
    return passphrase


def _config_value(args: argparse.Namespace, interactive: bool, err: TextIO) -> str:
    if args.value is not None:
        if args.secret:
            err.write("note: a secret given on the command line stays in your shell history\n")
        return str(args.value)
    if interactive:
        return _ask_secret(f"{args.key}: ") if args.secret else input(f"{args.key}: ")
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") and text.count("\n") == 1 else text


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout  # read at the call: redirect_stdout works
    err = err if err is not None else sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with contextlib.redirect_stdout(out):  # --help writes to `out`, and returns
            args = _parser().parse_args(argv)
    except SystemExit as stop:  # --help
        return int(stop.code or 0)
    except UsageError as error:
        err.write(f"{error.usage}python -m automation: error: {error}\n")
        if "--json" in argv:
            out.write(error_object("usage", str(error)))
        return USAGE_ERROR
    as_json = getattr(args, "json", False)
    interactive = sys.stdin.isatty()
    try:
        if args.command == "init":
            from automation.lifecycle import init_stack

            ask = _ask_secret if interactive else None
            result = init_stack(args.stack, args.source, _new_passphrase(interactive), ask, PROJECT_DIR)
            out.write(result.render())
            return 0
        if args.command == "config":
            from automation.lifecycle import set_value

            value = _config_value(args, interactive, err)
            passphrase = passphrase_from_env_or_prompt(interactive)
            key = set_value(args.stack, args.key, value, args.secret, passphrase, PROJECT_DIR)
            out.write(f"{key} set{' (encrypted)' if args.secret else ''} in Pulumi.{args.stack}.yaml\n")
            return 0
        if args.command == "validate":
            plan = validate(args.stack, file=args.file, require_secrets=not args.allow_missing_secrets)
            out.write(json.dumps(plan, indent=2) + "\n" if args.json else offline.render_text(plan))
            return 0
        if args.command in OPERATIONS:
            config = dict(args.config)
            options = StackOptions(args.stack, PROJECT_DIR, backend_url=args.backend, config=config)
            return run_operation(
                args.command,
                options,
                out,
                json_lines=args.json,
                yes=getattr(args, "yes", False),
                show_secrets=getattr(args, "show_secrets", False),
                interactive=interactive,
                err=err,
                guard_options=guard_options_from(args),
            )
        if args.command == "release":
            out.write(f"{release(args.out, args.stack, args.all, not args.no_wheels)}\n")
            return 0
        if args.command == "setup":
            out.write(json.dumps(setup(args.bundle, args.stack, not args.no_wheels), indent=2) + "\n")
            return 0
        if args.command == "drill":
            return run_drill_command(args, out, err=err)
        if args.command == "lifecycle":
            return run_lifecycle(args, out)
        extra: dict[str, Any] = {}
        if args.command != "backup":
            extra["image"] = args.helper_image
        if args.command == "restore":
            extra.update(
                archive=args.archive,
                service=args.service,
                identity=args.identity,
                dry_run=args.dry_run,
                resume=args.resume,
                via=args.via,
            )
        backup(args.command, args.host, args.stack, args.file, out, **extra)
        return 0
    except ConfigError as error:
        return _fail(out, err, as_json, "config", str(error), 1, error.problems)
    except FileNotFoundError as error:
        return _fail(out, err, as_json, "not-found", str(error), 1)
    except OSError as error:  # a file the command writes or reads (--comment, --out, ...)
        return _fail(out, err, as_json, "os", str(error), 1)
    except MissingCliError as error:
        return _fail(out, err, as_json, "missing-cli", str(error), 2)
    except RuntimeError as error:  # BundleError, BackupError, LifecycleError: they say what to do
        return _fail(out, err, as_json, "failed", str(error), 1)


def _fail(
    out: TextIO,
    err: TextIO,
    as_json: bool,
    kind: str,
    message: str,
    code: int,
    problems: list[tuple[str, str]] | None = None,
) -> int:
    """An error: its message on stderr, and with --json also one JSON object on stdout."""
    err.write(f"{message}\n")
    if as_json:
        out.write(error_object(kind, message, problems))
    return code
