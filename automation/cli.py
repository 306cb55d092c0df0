"""`python -m automation`: every operation of the project as a command, and as a function.

    validate [--stack S | --file F] [--json]  config check and resolved plan, offline
    preview | up | refresh [--stack S]     through the Automation API, live progress
    destroy [--stack S] [--yes]            asks first; retained volumes stay
    outputs [--stack S] [--show-secrets]
    release --out bundle.tar.gz [--all]    offline bundle: images, wheels, plugins
    setup bundle.tar.gz [--stack S]        verify, load it onto the stack's hosts, check image IDs
    backup --host H                        run the host's backup now
    backups --host H                       the host's archives, newest first, age and size
    restore --host H --archive FILE [--service S] [--identity KEY] [--dry-run]
    drill --host H [--service S] | --due | --rules  restore drills: scratch volumes, checks, metrics

Exit codes: 0 success, 1 failure (config, operation), 2 the Pulumi CLI is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from automation import validate as offline
from automation.preflight import (
    ArchiveAnnouncer,
    GuardOptions,
    add_guard_arguments,
    check_before_up,
    discard_plan,
    guard_options_from,
    guarded_preview,
)
from automation.progress import Progress
from automation.workspace import (
    PROJECT_DIR,
    MissingCliError,
    StackOptions,
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


def run_operation(
    operation: str,
    options: StackOptions,
    out: TextIO = sys.stdout,
    json_lines: bool = False,
    yes: bool = False,
    show_secrets: bool = False,
    interactive: bool = False,
    guard_options: GuardOptions | None = None,
) -> int:
    """Run one Pulumi operation on a stack; returns the exit code."""
    config = offline.load(options.project_dir, options.stack)  # fail fast, offline
    guard_options = guard_options or GuardOptions()
    if operation == "destroy" and not yes:
        if not interactive:
            out.write("destroy needs --yes when not run from a terminal\n")
            return 1
        answer = input(
            f"Destroy every resource of stack {options.stack!r}? Stateful volumes are kept. [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes"):
            out.write("nothing destroyed\n")
            return 1
    stack = open_stack(options, passphrase_from_env_or_prompt(interactive))
    if operation == "outputs":
        values = {
            k: (v.value if show_secrets or not v.secret else "[secret]") for k, v in stack.outputs().items()
        }
        out.write(json.dumps(values, indent=2, sort_keys=True, default=str) + "\n")
        return 0

    from pulumi.automation import errors as auto_errors

    if operation == "preview":
        return guarded_preview(stack, config, guard_options, out, json_lines)
    extra: dict[str, Any] = {}
    if operation == "up":
        allowed, extra = check_before_up(stack, config, guard_options, out, json_lines)
        if not allowed:
            return 1
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
        out.write(
            f"{operation} failed: {str(error).strip().splitlines()[-1] if str(error).strip() else error}\n"
        )
    finally:
        discard_plan(extra)
        if not json_lines:
            out.write(progress.render_summary())
        if operation == "destroy" and ok:
            out.write(
                "Stateful volumes were retained (data.delete-on-destroy is off): "
                "remove them by hand if unwanted.\n"
            )
        if trace is not None and endpoint:
            from automation.traces import export

            try:
                export(endpoint, trace.payload(progress, time.time(), ok))
            except OSError as error:
                out.write(f"could not send the deployment trace to {endpoint}: {error}\n")
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
    from automation.transport import DialStdioBridge, dial_command, key_dir_from_env
    from components.docker.host import HostArgs, SshTarget

    config = offline.load(project_dir, stack)
    with contextlib.ExitStack() as bridges:
        hosts: dict[str, str] = {}
        for h in config.hosts:
            url = HostArgs(h.name, SshTarget(*h.ssh) if h.ssh else None).docker_host
            # An SSH host through the provider's own ssh command: its pinned host key.
            command = dial_command(config, h.name, key_dir_from_env(), stack)
            hosts[url] = bridges.enter_context(DialStdioBridge(command)) if command else url
        return bundle.setup(
            bundle_path, hosts, install_wheels=wheels, plugins_target=bundle.default_plugins_dir()
        )


def backup(
    command: str,
    host: str,
    stack: str = "dev",
    file: Path | None = None,
    out: TextIO = sys.stdout,
    project_dir: Path = PROJECT_DIR,
    **options: Any,
) -> None:
    """`backup`, `backups` or `restore` on one host (see automation/backup.py)."""
    from automation import backup as backups

    config = offline.load(project_dir, stack, file, require_secrets=False)
    hb = backups.host_backup(config, host, stack)
    docker = backups.DockerCli.for_host(hb)
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


def run_drill_command(args: argparse.Namespace, out: TextIO, project_dir: Path = PROJECT_DIR) -> int:
    """`drill`: 0 when every service's restore was verified, 1 when one was not."""
    from automation.drill import drill, drill_due

    config = offline.load(project_dir, args.stack, args.file, require_secrets=False)
    if args.rules:
        out.write(drill_rules_of(config))
        return 0
    if args.due:
        if args.service or args.archive:
            out.write("--due drills every due host's newest archive: no --service or --archive\n")
            return 1
        return 0 if drill_due(config, out, args.identity, args.helper_image) else 1
    options: dict[str, Any] = {"service": args.service, "archive": args.archive, "identity": args.identity}
    if args.sample is not None:
        options["sample"] = args.sample
    report = drill(config, args.host, out, image=args.helper_image, **options)
    return 0 if report.ok else 1


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m automation", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def with_stack(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--stack", default="dev", help="stack name (Pulumi.<stack>.yaml); default dev")
        return p

    p = with_stack(sub.add_parser("validate", help="check the config offline, print the plan"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--file", type=Path, help="validate this stack file instead (e.g. examples/apps.yaml)")
    p.add_argument(
        "--allow-missing-secrets", action="store_true", help="a template: named secrets need not be set yet"
    )
    for operation in OPERATIONS:
        p = with_stack(sub.add_parser(operation, help=f"pulumi {operation}"))
        p.add_argument("--json", action="store_true", help="one JSON object per step (CI logs)")
        p.add_argument("--backend", help="backend URL (default: file://<project>/.pulumi-state)")
        p.add_argument(
            "--config",
            action="append",
            default=[],
            type=_key_value,
            metavar="KEY=VALUE",
            help="set a homelab: config value",
        )
        p.add_argument("--yes", action="store_true", help="do not ask (destroy asks otherwise)")
        if operation in ("preview", "up"):
            add_guard_arguments(p, operation)
        if operation == "outputs":
            p.add_argument("--show-secrets", action="store_true")
    p = with_stack(sub.add_parser("release", help="build an offline bundle"))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--all", action="store_true", help="every image, not just the enabled services'")
    p.add_argument("--no-wheels", action="store_true")
    p = with_stack(sub.add_parser("setup", help="verify a bundle and load it onto the stack's hosts"))
    p.add_argument("bundle", type=Path)
    p.add_argument("--no-wheels", action="store_true")
    p = with_stack(sub.add_parser("backup", help="run a host's backup now"))
    p.add_argument("--host", required=True)
    p = with_stack(sub.add_parser("backups", help="list a host's archives with age and size"))
    p.add_argument("--host", required=True)
    p = with_stack(sub.add_parser("restore", help="restore a host's volumes from an archive"))
    p.add_argument("--host", required=True)
    p.add_argument(
        "--archive", required=True, help="a file here, or the name of an archive in the host's directory"
    )
    p.add_argument("--service", help="only this service's volumes")
    p.add_argument("--identity", type=Path, help="age identity (the stack output backup-identity)")
    p.add_argument("--dry-run", action="store_true", help="check the archive and show the plan only")
    p = with_stack(
        sub.add_parser("drill", help="restore a host's newest archive into scratch volumes and check it")
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--host")
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
    p.add_argument("--identity", type=Path, help="age identity (the stack output backup-identity)")
    p.add_argument(
        "--sample", type=int, help="files checksummed per volume (default: data.restore-drills.sample)"
    )
    for name in ("backup", "backups", "restore", "drill"):
        p = sub.choices[name]
        p.add_argument("--file", type=Path, help="use this stack file (e.g. a copy on a fresh machine)")
        if name != "backup":
            p.add_argument("--helper-image", help="image of the throwaway container (default: the engine's)")
    return parser


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            plan = validate(args.stack, file=args.file, require_secrets=not args.allow_missing_secrets)
            out.write(json.dumps(plan, indent=2) + "\n" if args.json else offline.render_text(plan))
            return 0
        if args.command in OPERATIONS:
            config = dict(args.config)
            options = StackOptions(args.stack, backend_url=args.backend, config=config)
            return run_operation(
                args.command,
                options,
                out,
                json_lines=args.json,
                yes=getattr(args, "yes", False),
                show_secrets=getattr(args, "show_secrets", False),
                interactive=sys.stdin.isatty(),
                guard_options=guard_options_from(args),
            )
        if args.command == "release":
            out.write(f"{release(args.out, args.stack, args.all, not args.no_wheels)}\n")
            return 0
        if args.command == "setup":
            out.write(json.dumps(setup(args.bundle, args.stack, not args.no_wheels), indent=2) + "\n")
            return 0
        if args.command == "drill":
            return run_drill_command(args, out)
        extra: dict[str, Any] = {}
        if args.command != "backup":
            extra["image"] = args.helper_image
        if args.command == "restore":
            extra.update(
                archive=args.archive, service=args.service, identity=args.identity, dry_run=args.dry_run
            )
        backup(args.command, args.host, args.stack, args.file, out, **extra)
        return 0
    except ConfigError as error:
        out.write(f"{error}\n")
        return 1
    except FileNotFoundError as error:
        out.write(f"{error}\n")
        return 1
    except MissingCliError as error:
        out.write(f"{error}\n")
        return 2
    except RuntimeError as error:  # BundleError, BackupError: their messages say what to do
        out.write(f"{error}\n")
        return 1
