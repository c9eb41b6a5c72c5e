"""Run every statement of a SQL file against Hazelcast, one `fraud sql` call each.

Used by the Kubernetes Job that creates the SQL mappings (k8s/base/sql/mappings.sql, mounted
from a ConfigMap):

    python /app/apply_sql.py /etc/fraud/sql/mappings.sql
    python /app/apply_sql.py --dry-run FILE      # print the statements, run nothing

Statements end with ``;``. ``--`` comments and ``/* */`` comments are dropped; a ``;`` inside a
quoted string or identifier does not end a statement. The first failing statement stops the
run with its exit status (the Job then retries, e.g. while Hazelcast is still starting).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def split_statements(text: str) -> list[str]:
    """The statements of ``text``, without comments, trailing ``;`` or surrounding space."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in ("'", '"'):
            end = i + 1
            while end < n:
                if text[end] == ch:
                    if end + 1 < n and text[end + 1] == ch:  # doubled quote: escaped
                        end += 2
                        continue
                    break
                end += 1
            current.append(text[i:end + 1])
            i = end + 1
        elif text.startswith("--", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            current.append(" ")
        elif ch == ";":
            statement = "".join(current).strip()
            if statement:
                statements.append(statement)
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    tail = "".join(current).strip()
    if tail:
        statements.append(tail)
    return [_squeeze_blank_lines(s) for s in statements]


def _squeeze_blank_lines(statement: str) -> str:
    lines = [line.rstrip() for line in statement.splitlines()]
    return "\n".join(line for line in lines if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="SQL file; statements end with ';'")
    parser.add_argument("--dry-run", action="store_true", help="print the statements only")
    args = parser.parse_args(argv)
    statements = split_statements(args.file.read_text(encoding="utf-8"))
    if not statements:
        print(f"apply_sql: no statement in {args.file}", file=sys.stderr)
        return 1
    for number, statement in enumerate(statements, 1):
        first_line = statement.splitlines()[0]
        print(f"apply_sql: [{number}/{len(statements)}] {first_line}", file=sys.stderr,
              flush=True)
        if args.dry_run:
            print(statement + ";")
            continue
        result = subprocess.run([sys.executable, "-m", "service.cli", "sql", statement],
                                check=False)
        if result.returncode != 0:
            print(f"apply_sql: statement {number} failed (exit {result.returncode})",
                  file=sys.stderr)
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
