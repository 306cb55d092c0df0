"""Image contracts: what the program relies on in each image it runs, with where it was seen.

A contract sits beside the pin it describes, so a pin change is reviewed together with the
facts it may break: the user the image runs as, whether it has a shell, the binaries the
program calls, the paths it reads configuration from, and the `*_FILE` variables it honours.
Every fact names the upstream file (repository, path and tag) it was verified in; tests use
the contracts to check that the program asks of an image only what its contract lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImageContract:
    image: str  # repository:tag, exactly as the program pins it
    user: str  # uid[:gid] the image runs as by default ("0" is root)
    shell: str | None  # path of a POSIX shell in the image, or None
    binaries: tuple[str, ...] = ()  # absolute paths of the programs the program runs in it
    config_paths: tuple[str, ...] = ()  # where it reads files the program mounts or writes
    file_envs: tuple[str, ...] = ()  # `*_FILE` variables it reads secrets from
    env: Mapping[str, str] = field(default_factory=dict)  # image ENV the program relies on
    # Fact -> the upstream file it was verified in ("owner/repo path @ tag").
    verified: Mapping[str, str] = field(default_factory=dict)

    @property
    def repository(self) -> str:
        return self.image.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.image.rsplit(":", 1)[1]

    def runs(self, binary: str) -> bool:
        return binary in self.binaries
