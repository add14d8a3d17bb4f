"""benchmarks/bench_released.py without the released code: every family is skipped with the recipe to get it."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_each_family_without_its_checkout_is_skipped_with_the_recipe():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_released.py")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for family, repository in (("DACNN", "Gabriel-Huang/DACNN_release"),
                               ("RPG", "samaonline/Recurrent-Parameter-Generators"),
                               ("MGIC", "BGUCompSci/MultigridInChannelsCNNs")):
        skipped = [line for line in result.stdout.splitlines() if line.startswith(f"{family}: skipped")]
        assert len(skipped) == 1, result.stdout
        assert f"git clone https://github.com/{repository}" in skipped[0] and "checkout" in skipped[0]


def test_a_checkout_that_is_not_a_folder_is_refused_with_the_recipe(tmp_path):
    missing = str(tmp_path / "absent")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_released.py"),
                             "--released-mgic", missing], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode != 0
    assert missing in result.stderr
    assert "git clone https://github.com/BGUCompSci/MultigridInChannelsCNNs" in result.stderr
