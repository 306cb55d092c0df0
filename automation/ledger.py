"""When was a service last backed up: the guard's `BackupLedger` over the backup engine.

The engine (offen/docker-volume-backup, components/homelab/backup.py) writes one archive per
run of a host's schedule, holding every stateful volume of that host, into the host's backup
directory; a run that fails leaves no archive there. So the newest archive of the host
(`backups --host H`, automation/backup.py `list_archives`: by modification time) is the
newest successful backup of each of its services. Pre-upgrade backups are runs of the same
engine and count the same way.
"""

from __future__ import annotations

from automation.backup import BackupError, DockerCli, host_backup, list_archives
from automation.guard import BackupLedger
from stacks.config import StackConfig


class ArchiveLedger:
    """Asks each host once; an unanswerable host raises `BackupError` saying why."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self._newest: dict[str, tuple[float | None, set[str]] | BackupError] = {}

    def _host(self, host: str) -> tuple[float | None, set[str]]:
        if host not in self._newest:
            try:
                hb = host_backup(self.config, host)
                with DockerCli.for_host(hb) as docker:
                    archives = list_archives(hb, docker)
                newest = float(archives[0].mtime) if archives else None
                self._newest[host] = (newest, {e.service for e in hb.entries})
            except BackupError as error:
                self._newest[host] = error
        found = self._newest[host]
        if isinstance(found, BackupError):
            raise found
        return found

    def newest_backup(self, host: str, service: str) -> float | None:
        newest, services = self._host(host)
        return newest if service in services else None


def ledger_for(config: StackConfig) -> BackupLedger | None:
    return ArchiveLedger(config) if config.backup.enabled else None
