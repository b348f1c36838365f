#!/usr/bin/env python3
"""Compares two runs of the official MCP conformance suite: the fixture direct and the same
fixture through the gateway.

    conformance_compare.py --scenarios LIST --direct DIR --gateway DIR --expected FILE

LIST holds the scenario names the suite ran (one a line). Each DIR is a `conformance server
-o DIR` output: one `server-<scenario>-<timestamp>/checks.json` per scenario. A scenario
passes when none of its checks has status FAILURE and at least one has SUCCESS; one without
results (crashed, timed out) fails.

FILE lists the scenarios known to fail direct, one a line as `scenario  # reason` (a reason is
required). The comparison fails when:
- a scenario fails direct and is not listed (a fixture bug: fix it or list it with a reason);
- a listed scenario passes direct (stale entry: remove it);
- the set of passing scenarios differs between direct and through the gateway.
Prints both summaries, the difference and a verdict; exits 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def load_run(out_dir: Path) -> dict[str, tuple[int, int, list[str]]]:
    """scenario -> (checks passed, checks failed, failure messages)."""
    results: dict[str, tuple[int, int, list[str]]] = {}
    for checks_file in sorted(out_dir.glob("*/checks.json")):
        match = RESULT_DIR.match(checks_file.parent.name)
        if not match:
            continue
        checks = json.loads(checks_file.read_text(encoding="utf-8"))
        passed = sum(1 for check in checks if check.get("status") == "SUCCESS")
        failures = [
            f"{check.get('id')}: {check.get('errorMessage', '')}".strip()
            for check in checks
            if check.get("status") == "FAILURE"
        ]
        results[match.group("scenario")] = (passed, len(failures), failures)
    return results


def load_expected(path: Path) -> dict[str, str]:
    expected: dict[str, str] = {}
    if not path.exists():
        return expected
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        scenario, _, reason = line.partition("#")
        if not reason.strip():
            raise SystemExit(f"{path}:{number}: give a reason after '#' for {scenario.strip()!r}")
        expected[scenario.strip()] = reason.strip()
    return expected


def passing(scenarios: list[str], run: dict[str, tuple[int, int, list[str]]]) -> set[str]:
    return {name for name in scenarios if name in run and run[name][1] == 0 and run[name][0] > 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", type=Path, required=True)
    parser.add_argument("--direct", type=Path, required=True)
    parser.add_argument("--gateway", type=Path, required=True)
    parser.add_argument("--expected", type=Path, required=True)
    args = parser.parse_args()

    scenarios = [line.strip() for line in args.scenarios.read_text().splitlines() if line.strip()]
    if not scenarios:
        print("conformance: the suite listed no server scenarios", file=sys.stderr)
        return 1
    direct, gateway = load_run(args.direct), load_run(args.gateway)
    expected = load_expected(args.expected)
    direct_ok, gateway_ok = passing(scenarios, direct), passing(scenarios, gateway)

    def cell(run: dict[str, tuple[int, int, list[str]]], name: str) -> str:
        if name not in run:
            return "no result"
        passed, failed, _ = run[name]
        return f"{'pass' if failed == 0 and passed > 0 else 'FAIL'} ({passed}/{passed + failed})"

    width = max(len(name) for name in scenarios)
    print(f"{'scenario':<{width}}  {'direct':<14}  {'via gateway':<14}")
    for name in scenarios:
        mark = "" if (name in direct_ok) == (name in gateway_ok) else "  <-- differs"
        print(f"{name:<{width}}  {cell(direct, name):<14}  {cell(gateway, name):<14}{mark}")
    total = len(scenarios)
    print(f"direct:      {len(direct_ok)} passed, {total - len(direct_ok)} failed of {total} scenarios")
    print(f"via gateway: {len(gateway_ok)} passed, {total - len(gateway_ok)} failed of {total} scenarios")

    problems: list[str] = []
    for name in scenarios:
        for label, run, ok in (("direct", direct, direct_ok), ("via gateway", gateway, gateway_ok)):
            if name not in ok and name in run:
                for failure in run[name][2]:
                    print(f"  {label} {name}: {failure}")
    for name in sorted(set(scenarios) - direct_ok):
        if name not in expected:
            problems.append(f"{name} fails direct: a fixture bug (fix the fixture or list it with a reason)")
    for name, reason in sorted(expected.items()):
        if name in direct_ok:
            problems.append(f"{name} is listed as failing ({reason}) but passes direct: remove the entry")
        elif name not in scenarios:
            problems.append(f"{name} is listed as failing but the suite has no such scenario")
    only_direct, only_gateway = sorted(direct_ok - gateway_ok), sorted(gateway_ok - direct_ok)
    if only_direct:
        problems.append(f"pass direct but fail through the gateway: {', '.join(only_direct)}")
    if only_gateway:
        problems.append(f"pass through the gateway but fail direct: {', '.join(only_gateway)}")
    if not only_direct and not only_gateway:
        print("difference: none (the same scenarios pass both ways)")
    for problem in problems:
        print(f"CONFORMANCE PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
