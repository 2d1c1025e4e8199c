"""Importing JAX without reading every installed distribution's metadata (jax_import.py): JAX's
search for a ROCm plugin still finds one, and nothing else in the process sees fewer distributions."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize("plugin", [True, False], ids=["a ROCm plugin", "none"])
def test_jax_finds_a_rocm_plugin_reads_no_other_metadata_and_every_distribution_is_seen_again(tmp_path, plugin):
    """JAX stops at the first ROCm plugin it finds, so the probe (a distribution that records its
    metadata being read) shows the narrowing only where there is none."""
    if plugin:  # as pip would install one: its package and its metadata directory
        package = tmp_path / "jax_rocm7_plugin"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "rocm_plugin_extension.py").write_text("FOUND = True\n")
        info = tmp_path / "jax_rocm7_plugin-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jax-rocm7-plugin\nVersion: 0.1.0\n")
    script = textwrap.dedent(f"""
        import importlib.metadata, pathlib, sys, threading
        sys.path.insert(0, {str(tmp_path)!r})

        reads = []

        class Probe(importlib.metadata.Distribution):  # a distribution that tells when it is read
            _path = pathlib.Path("/nowhere/zz_probe-1.0.dist-info")

            def read_text(self, filename):
                reads.append(filename)
                return "Metadata-Version: 2.1\\nName: zz-probe\\nVersion: 1.0\\n" if filename == "METADATA" else None

            def locate_file(self, path):
                return pathlib.Path("/nowhere") / path

        class ProbeFinder:
            @staticmethod
            def find_spec(*args, **kwargs):
                return None

            @staticmethod
            def find_distributions(context=None):
                return [Probe()]

        sys.meta_path.append(ProbeFinder)
        everything = importlib.metadata.distributions
        names = sorted(d.metadata["Name"] for d in everything())
        seen_elsewhere = []
        stop = threading.Event()

        def count():  # another thread, asking while JAX is imported
            while not stop.is_set():
                seen_elsewhere.append(sum(1 for _ in importlib.metadata.distributions()))

        other = threading.Thread(target=count)
        other.start()
        reads.clear()
        from jupyter_codegemma.backends.local import jax_import
        jax_import.import_jax()
        stop.set()
        other.join()
        assert reads == [], reads  # JAX's search did not read the probe's metadata
        from jax._src.numpy import array_constructors
        if {plugin}:
            assert array_constructors.rocm_plugin_extension.FOUND
        else:
            assert array_constructors.rocm_plugin_extension is None
        assert importlib.metadata.distributions is everything
        assert "zz-probe" in names
        assert sorted(d.metadata["Name"] for d in importlib.metadata.distributions()) == names
        assert seen_elsewhere and set(seen_elsewhere) == {{len(names)}}, (set(seen_elsewhere), len(names))
        print("ok", len(names), len(seen_elsewhere))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")


def test_a_process_that_imported_jax_itself_is_left_alone():
    script = textwrap.dedent("""
        import importlib.metadata
        import jax
        everything = importlib.metadata.distributions
        from jupyter_codegemma.backends.local import jax_import
        jax_import.import_jax()
        assert importlib.metadata.distributions is everything
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
