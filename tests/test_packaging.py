"""What ``pip install .`` installs besides the package: the man page (``man ansz``), the
three commands, and the sample weights of ``ansz bench``. A wheel is built without the
kernel library (ANSZ_AOT=0) from a copy of the sources, so the checkout is not touched."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_the_man_page_commands_and_sample_weights(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    for name in ("ansz", "man"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "_kernels_aot*"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)],
                          env={**os.environ, "ANSZ_AOT": "0"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("ansz-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        man = [n for n in names if n.endswith("/data/share/man/man1/ansz.1")]
        assert len(man) == 1, names
        assert z.read(man[0]) == (ROOT / "man" / "ansz.1").read_bytes()
        entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = configparser.ConfigParser()
        scripts.read_string(z.read(entry).decode())
        assert dict(scripts["console_scripts"]) == {
            "ansz": "ansz.cli:main", "unansz": "ansz.cli:unansz", "anszcat": "ansz.cli:anszcat"}
        for kind in ("bf16", "f32", "fp8"):
            assert f"ansz/data/sample-{kind}.safetensors" in names
        assert "ansz/data/README.md" in names
