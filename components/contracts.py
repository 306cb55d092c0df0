"""Image contracts: where each fact about an image was read (`Seen`, `Fact`, `User`, shared
with the homelab's contracts in components/homelab/images.py), and the contracts of the
images the platform and the app pipelines run in Kubernetes.

For the cluster images, as for the homelab's: beside each pin, the facts the program relies
on, each with the upstream file (repository, path, tag or commit) it was read in: the tag,
the user the image runs as, whether it has a shell, the programs the program runs in it (a
container `command`, or the entrypoint it passes flags to), and the paths it mounts files at.
The Kubernetes objects carry no health-check commands for these images, so there are no
probe tools to list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["ClusterImageContract", "Fact", "Seen", "User"]

T = TypeVar("T")


@dataclass(frozen=True)
class Seen:
    """Where a fact was read: a file of a repository at a commit or tag, or a thread (`#n`)."""

    repo: str  # owner/name on GitHub
    path: str  # file in the repository, or "#<number>" for an issue or pull request
    ref: str = ""  # commit (12 hex digits) or tag the file was read at; "" for a thread

    def __str__(self) -> str:
        return f"{self.repo} {self.path}" + (f" @ {self.ref}" if self.ref else "")


@dataclass(frozen=True)
class Fact(Generic[T]):
    value: T
    seen: Seen


@dataclass(frozen=True)
class User:
    """Who the container's main process runs as; `uid` None where the program relies on none."""

    name: str
    uid: int | None


@dataclass(frozen=True)
class ClusterImageContract:
    image: str
    tag: Seen  # where this exact tag was seen to exist
    user: Fact[User]
    shell: Fact[bool]
    runs: tuple[Fact[str], ...]  # executables the program runs (absolute, or looked up on PATH)
    reads: tuple[Fact[str], ...] = ()  # paths the program mounts files at; "/" suffix: a directory
    env: tuple[Fact[str], ...] = ()  # "NAME=value" the image sets and the program relies on

    @property
    def repository(self) -> str:
        return self.image.rsplit(":", 1)[0]

    @property
    def tag_name(self) -> str:
        return self.image.rsplit(":", 1)[1]

    @property
    def uid(self) -> int:
        if self.user.value.uid is None:
            raise ValueError(f"{self.image}: its uid is not part of the contract")
        return self.user.value.uid

    def runs_program(self, executable: str) -> bool:
        return any(f.value == executable for f in self.runs)

    def allows_read(self, path: str) -> bool:
        return any(path.startswith(r.value) if r.value.endswith("/") else path == r.value for r in self.reads)

    def env_value(self, name: str) -> str | None:
        for fact in self.env:
            key, _, value = fact.value.partition("=")
            if key == name:
                return value
        return None

    def facts(self) -> list[tuple[str, Seen]]:
        """(what, where) of every fact, for the reference docs."""
        user = self.user.value
        out = [
            (f"tag `{self.tag_name}` exists", self.tag),
            (
                f"runs as: {user.name}" + (f" (uid {user.uid})" if user.uid is not None else ""),
                self.user.seen,
            ),
            (f"shell: {'yes' if self.shell.value else 'no'}", self.shell.seen),
        ]
        out += [(f"runs `{f.value}`", f.seen) for f in self.runs]
        out += [(f"reads `{f.value}`", f.seen) for f in self.reads]
        out += [(f"sets `{f.value}`", f.seen) for f in self.env]
        return out
