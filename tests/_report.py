"""Reading the markdown tables of a run's report.md in tests."""


def table_rows(report: str, head: str) -> list[str]:
    """The table in `report` whose header starts with `head`: its header and rows (the
    separator left out)."""
    lines = report.splitlines()
    i = next(i for i, x in enumerate(lines) if x.startswith(head))
    rows = [lines[i]]
    for x in lines[i + 2 :]:
        if not x.startswith("|"):
            break
        rows.append(x)
    return rows
