"""Repository contracts: CI runs the README's test command; tables are generated."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    assert test_cmd in (ROOT / ".ci/run").read_text()


def test_readme_main_command_is_the_cards_command():
    readme = (ROOT / "README.md").read_text()
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)```", readme, re.S)]
    main = next(b for b in blocks if "pip install" in b and "pytest" not in b)
    assert main.endswith("python -m benchmark run --rep dface --model transformer --protocol cde")


def test_leaderboard_and_readme_block_are_generated_from_committed_runs():
    from benchmark import glance
    from benchmark.leaderboard import build_board, render

    board = build_board([ROOT / "results/runs"])
    assert (ROOT / "results/LEADERBOARD.md").read_text() == render(board)
    assert glance.current_block((ROOT / "README.md").read_text()) == glance.render(board.matrices)
