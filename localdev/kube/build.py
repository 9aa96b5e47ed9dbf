"""Build the local control plane's binaries (kube-apiserver, etcd) from the Go module proxy, once.

Kubernetes is not meant to be consumed as a Go library: k8s.io/kubernetes requires its staging modules
(k8s.io/api, k8s.io/apiserver, ...) at the placeholder version v0.0.0 and points them at ./staging with
`replace` lines, which the go command ignores in a dependency. So we generate a tiny wrapper module that
requires k8s.io/kubernetes and re-creates those replace lines against the published v0.x.y tags, then
`go build`s the upstream main packages. etcd's modules carry real versions, so its wrapper only requires.

A stamp next to the binaries records what was built; a second run reads it and returns at once.
`KUBEBUILDER_ASSETS` (the envtest convention) wins over building when it holds both binaries.

Run: `python -m localdev.kube.build` (the Makefile's `kube-bins` target).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

KUBE_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
# Bump when the way binaries are built changes, so stale caches get rebuilt.
RECIPE_VERSION = 2

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO_ROOT / ".cache"
BUILD_DIR = CACHE_DIR / "kube-build"
BIN_DIR = CACHE_DIR / "kube-bin"
STAMP_NAME = "stamp.json"

# (binary name, Go package path) built from the kubernetes wrapper module.
# The controller-manager is there for what a cluster does on its own (Deployments and StatefulSets make
# pods and PVCs, namespaces and PVCs can be deleted, garbage collection); kube-scheduler is not: the
# local agent schedules pods, as it must also play the volume topology part.
# kubectl is the client a person uses: the demo and the custom-resource tests drive the product with it.
KUBE_BINARIES: tuple[tuple[str, str], ...] = (
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    ("kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    ("kubectl", "k8s.io/kubernetes/cmd/kubectl"),
)


class BuildError(RuntimeError):
    """The Go toolchain failed or is missing; the message says what to do."""


@dataclass(frozen=True)
class Binaries:
    """Where the control-plane executables are, and where they came from."""

    kube_apiserver: Path
    etcd: Path
    source: str  # "KUBEBUILDER_ASSETS", "cache" or "built"
    kube_version: str
    etcd_version: str
    # Optional: envtest's assets do not ship it; the cluster then runs without it.
    kube_controller_manager: Path | None = None
    kubectl: Path | None = None


def _wanted_stamp() -> dict[str, object]:
    return {
        "kube": KUBE_VERSION,
        "etcd": ETCD_VERSION,
        "recipe": RECIPE_VERSION,
        "binaries": [name for name, _ in KUBE_BINARIES] + ["etcd"],
    }


def _from_assets() -> Binaries | None:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return None
    base = Path(assets)
    apiserver, etcd = base / "kube-apiserver", base / "etcd"
    if not (os.access(apiserver, os.X_OK) and os.access(etcd, os.X_OK)):
        return None
    kcm, kubectl = base / "kube-controller-manager", base / "kubectl"
    return Binaries(
        apiserver, etcd, "KUBEBUILDER_ASSETS", "unknown", "unknown", kcm if os.access(kcm, os.X_OK) else None,
        kubectl if os.access(kubectl, os.X_OK) else None,
    )


def _from_cache(bin_dir: Path) -> Binaries | None:
    stamp = bin_dir / STAMP_NAME
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None
    if {k: recorded.get(k) for k in _wanted_stamp()} != _wanted_stamp():
        return None
    names = [name for name, _ in KUBE_BINARIES] + ["etcd"]
    if not all(os.access(bin_dir / name, os.X_OK) for name in names):
        return None
    return Binaries(
        bin_dir / "kube-apiserver",
        bin_dir / "etcd",
        "cache",
        KUBE_VERSION,
        ETCD_VERSION,
        bin_dir / "kube-controller-manager",
        bin_dir / "kubectl",
    )


def find_binaries() -> Binaries | None:
    """The binaries if they are already available (assets dir or a valid cache), without building."""
    return _from_assets() or _from_cache(BIN_DIR)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain ('go') is not on PATH; install Go 1.24+ to build kube-apiserver")
    return go


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Pure-Go static binaries: no C toolchain needed, and they run anywhere on this OS.
    env["CGO_ENABLED"] = "0"
    # Let the go command write go.sum entries for the generated module as it resolves them.
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def _run(args: list[str], cwd: Path, log: Path) -> str:
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.run(args, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE, stderr=fh, text=True)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise BuildError(f"{' '.join(args)} failed (exit {proc.returncode}); log {log}:\n{tail}")
    return proc.stdout


def _module_gomod(module: str, version: str, cwd: Path, log: Path) -> str:
    """The go.mod text of a published module version, via the module proxy."""
    out = _run([_go(), "mod", "download", "-json", f"{module}@{version}"], cwd, log)
    info = json.loads(out)
    if info.get("Error"):
        raise BuildError(f"cannot download {module}@{version}: {info['Error']}")
    return Path(info["GoMod"]).read_text()


def staging_replacements(kubernetes_gomod: str, kube_version: str) -> dict[str, str]:
    """Map each staging module (replaced by a ./staging path upstream) to its published v0.x.y tag."""
    staging_version = "v0." + kube_version.removeprefix("v1.")
    replaced = re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", kubernetes_gomod, re.MULTILINE)
    return {module: staging_version for module in replaced}


def _go_directive(gomod: str) -> str:
    match = re.search(r"^go\s+(\S+)", gomod, re.MULTILINE)
    return match.group(1) if match else "1.24"


def _write_kube_module(module_dir: Path, log: Path) -> None:
    module_dir.mkdir(parents=True, exist_ok=True)
    upstream = _module_gomod("k8s.io/kubernetes", KUBE_VERSION, module_dir, log)
    replacements = staging_replacements(upstream, KUBE_VERSION)
    if not replacements:
        raise BuildError(f"no staging replace lines found in k8s.io/kubernetes@{KUBE_VERSION}'s go.mod")
    lines = [
        "// Generated by localdev/kube/build.py; do not edit.",
        "module backupcenter.local/kubebuild",
        "",
        f"go {_go_directive(upstream)}",
        "",
        f"require k8s.io/kubernetes {KUBE_VERSION}",
        "",
        "replace (",
        *(f"\t{module} => {module} {version}" for module, version in sorted(replacements.items())),
        ")",
        "",
    ]
    _write_if_changed(module_dir / "go.mod", "\n".join(lines))
    # A file that imports nothing keeps `go build` of dependency packages happy in an otherwise empty module.
    _write_if_changed(
        module_dir / "doc.go", "// Package kubebuild only pins dependencies.\npackage kubebuild\n"
    )


def _write_etcd_module(module_dir: Path, log: Path) -> None:
    module_dir.mkdir(parents=True, exist_ok=True)
    upstream = _module_gomod("go.etcd.io/etcd/server/v3", ETCD_VERSION, module_dir, log)
    gomod = "\n".join(
        [
            "// Generated by localdev/kube/build.py; do not edit.",
            "module backupcenter.local/etcdbuild",
            "",
            f"go {_go_directive(upstream)}",
            "",
            f"require go.etcd.io/etcd/server/v3 {ETCD_VERSION}",
            "",
        ]
    )
    _write_if_changed(module_dir / "go.mod", gomod)
    _write_if_changed(
        module_dir / "doc.go", "// Package etcdbuild only pins dependencies.\npackage etcdbuild\n"
    )


def _write_if_changed(path: Path, text: str) -> None:
    # Leave an identical file alone so its mtime does not suggest anything changed.
    if path.exists() and path.read_text() == text:
        return
    path.write_text(text)


def kube_ldflags(version: str, build_date: str) -> str:
    """The -X flags upstream's hack/lib/version.sh sets, so /version reports the real release."""
    major, minor = version.removeprefix("v").split(".")[:2]
    flags = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (
            ("gitVersion", version),
            ("gitMajor", major),
            ("gitMinor", minor),
            ("gitCommit", "0000000000000000000000000000000000000000"),
            ("gitTreeState", "clean"),
            ("buildDate", build_date),
        ):
            flags.append(f"-X {pkg}.{key}={value}")
    return "-s -w " + " ".join(flags)


def build(bin_dir: Path = BIN_DIR, build_dir: Path = BUILD_DIR) -> Binaries:
    """Build both binaries into bin_dir (slow the first time: minutes)."""
    go = _go()
    bin_dir.mkdir(parents=True, exist_ok=True)
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir / "build.log"
    log.write_text("")
    build_date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    kube_dir = build_dir / "kubernetes"
    _write_kube_module(kube_dir, log)
    for name, package in KUBE_BINARIES:
        _run(
            [
                go,
                "build",
                "-trimpath",
                "-ldflags",
                kube_ldflags(KUBE_VERSION, build_date),
                "-o",
                str(bin_dir / f"{name}.tmp"),
                package,
            ],
            kube_dir,
            log,
        )
        # Rename last so an interrupted build never leaves a half-written binary under the final name.
        (bin_dir / f"{name}.tmp").replace(bin_dir / name)

    etcd_dir = build_dir / "etcd"
    _write_etcd_module(etcd_dir, log)
    _run(
        [
            go,
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            str(bin_dir / "etcd.tmp"),
            "go.etcd.io/etcd/server/v3",
        ],
        etcd_dir,
        log,
    )
    (bin_dir / "etcd.tmp").replace(bin_dir / "etcd")

    stamp = {**_wanted_stamp(), "built_at": build_date}
    (bin_dir / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
    return Binaries(
        bin_dir / "kube-apiserver",
        bin_dir / "etcd",
        "built",
        KUBE_VERSION,
        ETCD_VERSION,
        bin_dir / "kube-controller-manager",
        bin_dir / "kubectl",
    )


def kubectl() -> str:
    """The kubectl built with the control plane (the same version), for the demo and the tests."""
    found = ensure_binaries().kubectl
    if found is None:
        raise BuildError("no kubectl among the binaries (KUBEBUILDER_ASSETS without kubectl?)")
    return str(found)


def ensure_binaries() -> Binaries:
    """Return usable binaries, building them only when neither the assets dir nor the cache has them."""
    return find_binaries() or build()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        binaries = build() if args.force else ensure_binaries()
    except BuildError as exc:
        print(f"kube-bins: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(
        f"kube-bins: kube-apiserver {binaries.kube_version}, etcd {binaries.etcd_version} "
        f"({binaries.source}) in {binaries.kube_apiserver.parent} - {elapsed:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
