import re
import subprocess
import sys

from tests.helpers import REPO


def test_doctor_reports_missing_data_with_a_fix(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "assistant",
            "doctor",
            "--data-dir",
            str(tmp_path / "nowhere"),
            "--home",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[FAIL] data dir" in result.stdout and "fix: set LLAMA_MD_DATA_DIR" in result.stdout
    assert "[ok  ] generator loads" in result.stdout and "384-d" in result.stdout


def test_doctor_passes_with_real_data(tmp_path, data_dir):
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "doctor", "--data-dir", str(data_dir), "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\[ok  \] corpus pregnancy\s+8 PDFs, sha256 verified", result.stdout)
