# The guard of the optional mypyc build (issue 15; docs/design.md, "The compiled build"). `pgha
# compile` (build.py, cli.py) compiles the simulator's hot modules into a directory outside the
# source tree and writes a manifest there: the compiled modules and their extension files, and the
# sha256 of every source the compiled code was built from (each compiled file and every project
# file it imports, since mypyc bakes their types and constants in). `install()`, called by
# pgha/__init__.py and sim/__init__.py before anything else of theirs, decides once per process:
# the build is used only when every hash matches the files now on disk, and then wholly (all or
# nothing: mypyc calls across the modules of its group natively, so one edited module beside the
# others compiled would still run the stale code). A missing, stale or unreadable build changes
# nothing but speed. Cost: without a build, an environment lookup and one failed open (nothing
# else imported: tests/compiled checks it); with one, parsing the manifest and reading and
# hashing its sources (about 2 ms; measured in docs/design.md).
"""The optional compiled build: find it, check it against the sources, import from it if fresh.

PGHA_COMPILED: unset (or "auto") uses a fresh build silently; "1" asks for it, and says once on
stderr why not when the build cannot be used; "0" forces pure Python. PGHA_COMPILED_DIR: where
builds live (default ~/.cache/pgha/compiled), one directory per checkout and Python.
"""

from __future__ import annotations

import copyreg
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec

TYPE_CHECKING = False  # not typing's: importing typing would triple the cost of `import pgha`
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import ModuleType
    from typing import Any

ENV = "PGHA_COMPILED"
DIR_ENV = "PGHA_COMPILED_DIR"
MANIFEST = "manifest.json"
FORMAT = 1  # the manifest's layout; a build written in another is not used
OFF = frozenset({"0", "no", "false", "off"})
ON = frozenset({"1", "yes", "true", "on"})
# The checkout: the directory that holds pgha/ (pgha/compiled/__init__.py is three levels down).
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUFFIX = EXTENSION_SUFFIXES[0]  # ".cpython-311-x86_64-linux-gnu.so": the ABI the build is for


class Status:
    """What this process decided: `active` (compiled modules are imported from `directory`),
    and why not otherwise (`reason`: no build, a stale source, PGHA_COMPILED=0 ...)."""

    __slots__ = ("active", "directory", "modules", "reason")

    def __init__(
        self, active: bool, reason: str, directory: str, modules: tuple[str, ...] = ()
    ) -> None:
        self.active, self.reason, self.directory, self.modules = active, reason, directory, modules

    def __repr__(self) -> str:
        return f"Status(active={self.active}, reason={self.reason!r}, directory={self.directory!r})"


def cache_root() -> str:
    """Where builds live: $PGHA_COMPILED_DIR, or pgha/compiled under the user's cache."""
    explicit = os.environ.get(DIR_ENV)
    if explicit:
        return os.path.abspath(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pgha", "compiled")


def build_dir(root: str = ROOT, cache: str | None = None) -> str:
    """The build directory of the checkout `root` in `cache` (default: `cache_root()`), named
    after the checkout's path (and a hash of it) and the Python ABI. Only a name: what makes a
    build usable for a tree is that the tree's sources match its manifest."""
    key = 0x811C9DC5  # FNV-1a, 32 bits: a stable name without importing zlib or hashlib
    for byte in os.fsencode(root):
        key = ((key ^ byte) * 0x01000193) & 0xFFFFFFFF
    tag = SUFFIX.removeprefix(".").removesuffix(".so").replace(".", "-")
    name = f"{os.path.basename(root) or 'root'}-{key:08x}-{tag}"
    return os.path.join(cache or cache_root(), name)


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The build's manifest, None when there is no build; ValueError if it cannot be read."""
    try:
        with open(os.path.join(directory, MANIFEST), "rb") as file:
            text = file.read()
    except FileNotFoundError:
        return None
    import json

    try:
        manifest = json.loads(text)
    except ValueError as error:
        raise ValueError(f"unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError("a manifest of another format (rebuild with `pgha compile`)")
    for key in ("modules", "sources"):
        table = manifest.get(key)
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(f"a malformed manifest (its {key!r}; rebuild with `pgha compile`)")
    return manifest


def stale_sources(sources: Mapping[str, str], root: str = ROOT) -> list[str]:
    """The sources (paths relative to `root`) whose sha256 differs from `sources`, or missing."""
    from hashlib import sha256

    changed = []
    for path, digest in sources.items():
        try:
            with open(os.path.join(root, path), "rb") as file:
                if sha256(file.read()).hexdigest() == digest:
                    continue
        except OSError:
            pass
        changed.append(path)
    return changed


def check(directory: str, root: str = ROOT) -> tuple[dict[str, str], str]:
    """The build's modules (name -> extension file) if it is fresh for `root`; else ({}, why)."""
    try:
        manifest = read_manifest(directory)
    except (OSError, ValueError) as error:
        return {}, f"the build in {directory} cannot be used: {error}"
    if manifest is None:
        return {}, f"no compiled build in {directory} (run `pgha compile`)"
    if manifest.get("suffix") != SUFFIX:
        return {}, f"the build is for another Python ({manifest.get('suffix')}; this is {SUFFIX})"
    modules = {name: os.path.join(directory, file) for name, file in manifest["modules"].items()}
    missing = [file for file in modules.values() if not os.path.exists(file)]
    if missing:
        return {}, f"the build is incomplete: {missing[0]} is missing (run `pgha compile`)"
    changed = stale_sources(manifest["sources"], root)
    if changed:
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        return {}, f"stale: {changed[0]}{more} changed since the build (run `pgha compile`)"
    return modules, ""


# ---------------------------------------------------------------- importing from the build


class _Loader(ExtensionFileLoader):
    """An extension module of the build, imported through the finder."""

    def __init__(self, name: str, path: str, finder: _Finder) -> None:
        super().__init__(name, path)
        self.finder = finder

    def exec_module(self, module: ModuleType) -> None:
        super().exec_module(module)
        self.finder.settle(module)


class _Finder:
    """A meta-path finder for exactly the build's modules (and mypyc's shared library).

    It also makes the frozen dataclasses of the compiled modules picklable (`settle`): mypyc's own
    __setstate__ assigns each field, which a frozen class refuses. Most compiled modules are not
    imported through the finder (mypyc initializes the modules of its group that one imports
    itself), so each import through it, and each import of anything while some compiled module has
    not been seen, looks at the compiled modules initialized since.
    """

    def __init__(self, modules: Mapping[str, str]) -> None:
        self.modules = dict(modules)
        self.pending = set(modules)  # compiled modules not yet seen initialized
        self.seen = 0  # len(sys.modules) when last looked

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if self.pending and len(sys.modules) != self.seen:
            self.settle()
        file = self.modules.get(name)
        if file is None or (path is not None and not _ours(name, path)):
            return None  # not compiled, or in a package of another tree than this checkout
        spec = ModuleSpec(name, _Loader(name, file, self), origin=file)
        spec.has_location = True  # sets __file__ to the extension file
        return spec

    def settle(self, done: ModuleType | None = None) -> None:
        """Register the frozen dataclasses of every compiled module whose initialization has
        ended (`done`: one whose initialization just ended, though its spec still says not)."""
        self.seen = len(sys.modules)
        for name in [n for n in self.pending if n in sys.modules]:
            module = sys.modules[name]
            if module is not done and getattr(module.__spec__, "_initializing", False):
                continue
            self.pending.discard(name)
            for value in list(vars(module).values()):
                if _native_frozen(value, name):
                    copyreg.pickle(value, _reduce_frozen)


def _ours(name: str, path: Sequence[str]) -> bool:
    """Whether the package `path` the module `name` is looked for in is this checkout's (for
    sim.postgres.wal: ROOT/sim/postgres), not the same package imported from another tree."""
    package = os.path.realpath(os.path.join(ROOT, *name.split(".")[:-1]))
    return any(os.path.realpath(entry) == package for entry in path)


def _native_frozen(value: object, module: str) -> bool:
    # A compiled (native) class has __mypyc_attrs__; mypyc's __setstate__ sets each attribute,
    # which a frozen dataclass refuses, so copy and pickle go through _reduce_frozen instead.
    if not isinstance(value, type) or value.__module__ != module:
        return False
    params = getattr(value, "__dataclass_params__", None)
    return "__mypyc_attrs__" in value.__dict__ and bool(getattr(params, "frozen", False))


def _reduce_frozen(obj: Any) -> tuple[Any, tuple[type, dict[str, Any]]]:
    return _rebuild_frozen, (type(obj), obj.__getstate__())


def _rebuild_frozen(cls: Any, state: Mapping[str, Any]) -> Any:
    """A frozen dataclass instance from its attributes, as dataclasses' own unpickling does."""
    obj = cls.__new__(cls)
    for name, value in state.items():
        object.__setattr__(obj, name, value)
    return obj


# ---------------------------------------------------------------- the decision, once per process

_status: Status | None = None


def install() -> Status:
    """Decide (once per process) whether to import compiled modules, and install the finder."""
    global _status
    if _status is None:
        _status = _decide()
    return _status


def status() -> Status:
    """This process's decision (made now if nothing imported pgha or sim before)."""
    return install()


def _decide() -> Status:
    wanted = os.environ.get(ENV, "").strip().lower()
    directory = build_dir()
    if wanted in OFF:
        return Status(False, f"{ENV}={os.environ[ENV]} forces pure Python", directory)
    modules, reason = check(directory)
    if not modules:
        if wanted in ON:
            print(f"pgha: {ENV}={os.environ[ENV]}: running pure Python: {reason}", file=sys.stderr)
        return Status(False, reason, directory)
    sys.meta_path.insert(0, _Finder(modules))
    return Status(True, "", directory, tuple(sorted(modules)))
