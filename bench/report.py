"""Where the benchmarks' tables of record go: bench/RESULTS.md (or the file
$BENCH_OUT names), each between its own pair of markers, so that a rerun
replaces its table and keeps the commentary written by hand around it."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def put_table(name, table):
    """Puts `table` between `<!-- name -->` and `<!-- /name -->`, in place
    of what stands there, or with its markers at the end of the file."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    path = os.environ.get("BENCH_OUT", os.path.join(ROOT, "bench/RESULTS.md"))
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
