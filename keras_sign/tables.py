"""Tables: Markdown for reports, comparisons, sweeps and benchmarks; aligned text or CSV for the rows that
`predict` and `hands` print."""

import csv
import io


def markdown_table(header, rows, align=""):
    """A Markdown table of `header` and `rows` (cells of any type; None shows as `-`).

    `align` has one letter per column, `l` or `r` (numbers), and defaults to left for the rest.

    Example:
        >>> print(markdown_table(["model", "MB"], [["a", 1.5], ["b", None]], align="lr"))
        | model | MB |
        | --- | ---: |
        | a | 1.5 |
        | b | - |
    """
    rule = ["---:" if letter == "r" else "---" for letter in align.ljust(len(header), "l")]

    def line(cells):
        texts = ["-" if cell is None else str(cell) for cell in cells]
        return "|" + "|".join(f" {text} " if text else " " for text in texts) + "|"

    return "\n".join(line(cells) for cells in [header, rule, *rows])


def rows_text(header, rows, output_format):
    """`rows` under `header` as CSV text (`output_format` "csv") or as a table aligned for a terminal ("table"):
    the first column left-aligned, the others right."""
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue()
    lines = [[str(cell) for cell in line] for line in [header, *rows]]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "".join("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                             for i, (cell, width) in enumerate(zip(line, widths))).rstrip() + "\n" for line in lines)
