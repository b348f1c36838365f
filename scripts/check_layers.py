#!/usr/bin/env python3
"""Check the layers of `data-plane/src` and `control-plane/src` that ARCHITECTURE.md
describes.

Every top-level module of each crate belongs to one layer below. A module may name
(`crate::x`, `use crate::{x, ...}`) modules of its own layer or a lower one, never a higher
one, and the modules of one layer never form a cycle. A submodule listed on its own
(`x::y`, the file `x/y.rs` or the folder `x/y/`) has a layer apart from the rest of `x`; it
is named as `crate::x::y`, `crate::{x::y, ...}` or `crate::x::{y, ...}`. Test code
(`tests.rs`, `*_tests.rs`, and what follows a `#[cfg(test)] mod` line) is not checked. A
module that is in no layer is an error too, so a new module gets a place before it lands.

    python3 scripts/check_layers.py            # exits 1 and lists what breaks the layers
    python3 scripts/check_layers.py --graph    # also prints who imports whom
"""

import pathlib
import re
import sys
import tempfile

# Bottom to top; keep in step with "Layers of `data-plane/src`" in ARCHITECTURE.md.
LAYERS = [
    ("vocabulary", ["json_array", "sse", "caller", "trace_context", "backoff", "snapshot",
                    "mcp", "jsonrpc", "http", "upstream", "verdict"]),
    ("shared services", ["metrics", "refusal", "deadline", "state", "references",
                         "host_check", "connection_limit", "session"]),
    ("features", ["auth", "rate_limit", "approvals", "webhook", "audit", "telemetry",
                  "balancer", "upstream::exchange", "stdio", "public_tls", "policies",
                  "catalog", "answer_check", "batch", "routing_headers"]),
    ("runtime", ["runtime", "services"]),
    ("config paths", ["apply", "source"]),
    ("request path", ["admission", "aggregate", "proxy", "server", "admin", "lifecycle",
                      "cli", "lib", "main"]),
]

# Bottom to top; keep in step with "Layers of `control-plane/src`" in ARCHITECTURE.md.
CONTROL_PLANE_LAYERS = [
    ("vocabulary", ["clock", "tls", "auth", "metrics"]),
    ("storage", ["store", "principals"]),
    ("state", ["session_keys", "versions", "fleet"]),
    ("services", ["audit", "approvals", "key_rotation"]),
    ("interfaces", ["http", "admin", "discovery"]),
    ("lifecycle", ["server", "cli", "lib", "main"]),
]

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
CRATES = [
    (REPOSITORY / "data-plane" / "src", LAYERS),
    (REPOSITORY / "control-plane" / "src", CONTROL_PLANE_LAYERS),
]
TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{")
USE_CRATE = re.compile(r"\buse\s+crate::([^;]*);")
CRATE_PATH = re.compile(r"(?<![\w:])crate::(\w+)(?:::(\w+))?")
# Submodules with a layer of their own (`x::y`).
SUBMODULES = {
    name for _, layers in CRATES for _, modules in layers for name in modules if "::" in name
}


def module_name(crate_root, path):
    relative = path.relative_to(crate_root)
    if len(relative.parts) > 2 or (len(relative.parts) == 2 and relative.suffix == ".rs"):
        submodule = f"{relative.parts[0]}::{pathlib.Path(relative.parts[1]).stem}"
        if submodule in SUBMODULES:
            return submodule
    if len(relative.parts) > 1:
        return relative.parts[0]
    return relative.stem


def production_text(path):
    text = path.read_text()
    test_block = TEST_MODULE.search(text)
    if test_block:
        text = text[: test_block.start()]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def named_modules(text):
    """The top-level modules (and listed submodules) a file's text names through `crate::`."""
    names = set()
    for module, item in CRATE_PATH.findall(text):
        submodule = f"{module}::{item}"
        names.add(submodule if submodule in SUBMODULES else module)
    for statement in USE_CRATE.findall(text):
        statement = re.sub(r"\s+", "", statement)
        for submodule in SUBMODULES:
            module, item = submodule.split("::")
            if re.search(rf"(?<![\w:]){module}::\{{[^;]*\b{item}\b", statement):
                names.add(submodule)
        if not statement.startswith("{"):
            continue
        depth = 0
        start = 1
        for index, char in enumerate(statement):
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
            if (char == "," and depth == 1) or (char == "}" and depth == 0):
                item = statement[start:index]
                start = index + 1
                path = re.split(r"::|\{", item)
                if len(path) > 1 and f"{path[0]}::{path[1]}" in SUBMODULES:
                    names.add(f"{path[0]}::{path[1]}")
                elif path[0]:
                    names.add(path[0])
    return names


def find_cycle(nodes, edges):
    """One cycle among `nodes` (a list of names), or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        trail.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in nodes:
                continue
            if state.get(target) == "open":
                return trail[trail.index(target):] + [target]
            if target not in state:
                found = visit(target, trail)
                if found:
                    return found
        trail.pop()
        state[node] = "done"
        return None

    for node in sorted(nodes):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def check(crate_root, layers):
    """The problems of one crate, and its import graph."""
    layer_of = {}
    for rank, (_, modules) in enumerate(layers):
        for module in modules:
            layer_of[module] = rank
    edges = {}
    problems = []
    shown = crate_root.relative_to(REPOSITORY) if crate_root.is_relative_to(REPOSITORY) else crate_root
    for path in sorted(crate_root.rglob("*.rs")):
        if path.name == "tests.rs" or path.name.endswith("_tests.rs"):
            continue
        module = module_name(crate_root, path)
        where = shown / path.relative_to(crate_root)
        if module not in layer_of:
            problems.append(f"{where}: module `{module}` is in no layer")
            continue
        for target in named_modules(production_text(path)) - {module, "self", "super"}:
            edges.setdefault(module, set()).add(target)
            if target not in layer_of:
                continue
            if layer_of[target] > layer_of[module]:
                problems.append(
                    f"{where}: `{module}` ({layers[layer_of[module]][0]}) "
                    f"imports `{target}` ({layers[layer_of[target]][0]}), a higher layer"
                )
    for name, modules in layers:
        cycle = find_cycle(modules, edges)
        if cycle:
            problems.append(f"{shown}: import cycle in layer {name}: {' -> '.join(cycle)}")
    return problems, edges, len(layer_of)


def self_test():
    """The checker itself finds each kind of problem on a planted crate (run first, so a
    checker that stopped seeing imports fails instead of passing everything)."""
    with tempfile.TemporaryDirectory() as scratch:
        root = pathlib.Path(scratch)
        files = {
            "low.rs": "use crate::high::Thing;\n",
            "high.rs": "use crate::{low, side::{self, Other}};\n",
            "side.rs": "fn f() { crate::high::g() }\n",
            "stray.rs": "",
            "clean.rs": "// crate::high in a comment\n#[cfg(test)]\nmod tests {\n use crate::high;\n}\n",
        }
        for name, text in files.items():
            (root / name).write_text(text)
        problems, _, _ = check(root, [("bottom", ["low", "clean"]), ("top", ["high", "side"])])
    text = "\n".join(problems)
    expected = [
        "`low` (bottom) imports `high` (top), a higher layer",
        "import cycle in layer top: high -> side -> high",
        "module `stray` is in no layer",
    ]
    missing = [line for line in expected if line not in text]
    if missing or len(problems) != len(expected):
        print("check_layers.py self-test failed; it reported:\n" + text)
        return False
    return True


def main():
    if not self_test():
        return 2
    failed = False
    for crate_root, layers in CRATES:
        problems, edges, modules = check(crate_root, layers)
        shown = crate_root.relative_to(REPOSITORY)
        if "--graph" in sys.argv[1:]:
            for module in sorted(edges):
                print(f"{shown}: {module} -> {' '.join(sorted(edges[module]))}")
        for problem in problems:
            print(problem)
        if problems:
            failed = True
        else:
            print(f"{shown}: layers hold: {modules} modules in {len(layers)} layers")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
