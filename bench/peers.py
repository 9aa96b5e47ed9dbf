"""The data mover's peers, built once from the Go module proxy into ``.cache/peers/bin``.

restic installs with ``go install …@v0.18.1``.  kopia's version list is not served here, so
``go install …@v0.21.1`` is refused; a wrapper module that requires ``github.com/kopia/kopia v0.21.1``
(a build-tagged tools.go imports it) lets ``go build`` build kopia's main package at that version.
A stamp beside the binaries records what was built; a second run returns at once.

    python -m bench.peers          # prints one "<name> <path>" line per peer
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

RESTIC_VERSION = "v0.18.1"
KOPIA_VERSION = "v0.21.1"

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / ".cache" / "peers"
BIN = PEERS / "bin"
STAMP = BIN / "stamp.json"


def _go(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    if shutil.which("go") is None:
        raise SystemExit("the Go toolchain is needed to build restic and kopia (https://go.dev/dl/)")
    done = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"go {' '.join(args)} failed in {cwd}:\n{done.stderr[-4000:]}")


def build() -> dict[str, Path]:
    """restic and kopia at the pinned versions: built now, or found from an earlier build."""
    wanted = {"restic": RESTIC_VERSION, "kopia": KOPIA_VERSION}
    paths = {name: BIN / name for name in wanted}
    if STAMP.exists() and json.loads(STAMP.read_text()) == wanted and all(p.exists() for p in paths.values()):
        return paths
    BIN.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOBIN=str(BIN), GOFLAGS="-buildvcs=false", CGO_ENABLED="0")
    print(f"building restic {RESTIC_VERSION} (once, into {BIN})", file=sys.stderr, flush=True)
    _go(["install", f"github.com/restic/restic/cmd/restic@{RESTIC_VERSION}"], PEERS, env)
    wrapper = PEERS / "kopia-wrapper"
    wrapper.mkdir(parents=True, exist_ok=True)
    (wrapper / "go.mod").write_text(
        f"module local/kopiawrapper\n\ngo 1.24\n\nrequire github.com/kopia/kopia {KOPIA_VERSION}\n"
    )
    (wrapper / "tools.go").write_text(
        '//go:build tools\n\npackage tools\n\nimport _ "github.com/kopia/kopia"\n'
    )
    print(f"building kopia {KOPIA_VERSION} (once, into {BIN})", file=sys.stderr, flush=True)
    _go(["mod", "tidy"], wrapper, env)
    _go(["build", "-o", str(paths["kopia"]), "github.com/kopia/kopia"], wrapper, env)
    STAMP.write_text(json.dumps(wanted))
    return paths


if __name__ == "__main__":
    for name, path in build().items():
        print(name, path)
