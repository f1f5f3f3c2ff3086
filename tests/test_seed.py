"""The seed notebook shipped as package data, and its loader (sigma.book.seed)."""

from pathlib import Path

import pytest
import torch

from sigma.book import seed

ORIGINAL = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_37db169ecc3dfd71.txt"


def test_text_ships_with_the_package():
    text = seed.text()
    assert text.startswith("# Learning Filter Scale by")
    assert text.count("In [None]:") == 7


@pytest.mark.skipif(not ORIGINAL.exists(), reason="the original seed folder is not next to this checkout")
def test_shipped_text_is_the_original_verbatim():
    assert seed.text() == ORIGINAL.read_text(encoding="utf-8")


def test_blocks_alternate_markdown_and_code_in_order():
    kinds = [kind for kind, _ in seed.blocks()]
    assert kinds.count("code") == 7 and kinds[0] == "markdown"
    markdown = [src for kind, src in seed.blocks() if kind == "markdown"]
    assert markdown[1].startswith("## Toy Experiment") and markdown[1].endswith(
        "3. Learn sigma by gradient descent."
    )
    assert sum(src == "Check the gradient by finite differences." for src in markdown) == 2


def test_cells_drop_only_the_path_hack():
    raw = [src for kind, src in seed.blocks() if kind == "code"]
    code = seed.cells()
    assert code[1:] == raw[1:]
    assert code[0] == (raw[0] + "\n").replace(seed.PATH_HACK, "", 1).rstrip("\n")
    assert len(raw[0].splitlines()) - len(code[0].splitlines()) == len(seed.PATH_HACK.splitlines())
    for word in ("segmentron", "chdir", "sys.path", "subprocess"):
        assert word not in "".join(code)
    for kept in (
        "%matplotlib inline",
        "from sigma.blur import blur1d, blur2d_sphere",
        "torch.manual_seed(1337)",
    ):
        assert kept in code[0]


def test_cells_refuse_a_changed_first_cell(monkeypatch):
    monkeypatch.setattr(seed, "text", lambda: "# t\nIn [None]:\nimport os\n")
    with pytest.raises(ValueError, match="PATH_HACK"):
        seed.cells()


def test_to_python_turns_magics_into_calls():
    assert "run_line_magic('matplotlib', 'inline')" in seed.to_python("%matplotlib inline\n")


class _Shell:
    """Stands in for IPython: records line magics instead of running them."""

    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line):
        self.magics.append((name, line))


def test_first_cells_run_as_written():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shell = _Shell()
    before = torch.get_default_dtype()
    try:
        ns = {"get_ipython": lambda: shell}
        for source in seed.cells()[:2]:
            seed.run(source, ns)
    finally:
        torch.set_default_dtype(before)
        plt.close("all")
    assert shell.magics == [("matplotlib", "inline")]
    assert ns["x"].shape == (1, 1, 100) and ns["x"].dtype == torch.float64
    assert float(ns["true_sigma"]) == 3.0
