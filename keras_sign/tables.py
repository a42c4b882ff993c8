"""Markdown tables: the one way reports, comparisons, sweeps and benchmarks print a table."""


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
