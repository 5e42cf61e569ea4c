"""The PKU-AIGI-500K Space: compress any AI-generated image and compare codecs.

The app is built by the ``pku-aigi`` package (``pku_aigi.space.build_app``), the same one
that ``pku-aigi demo`` launches locally; this file only exposes it as ``demo`` for the
Hugging Face Spaces runtime. Example images come from ``PKU_AIGI_DATA_DIR`` (the
dataset's validation split), ``PKU_AIGI_EXAMPLES_DIR``, the ``examples/`` folder next
to this file when it exists, else the package's built-in CC0 sample (``pku_aigi.sample``).
"""

from pathlib import Path

from pku_aigi.space import build_app
from pku_aigi.space.limits import launch_options

demo = build_app(examples_dir=Path(__file__).resolve().parent / "examples")

if __name__ == "__main__":
    demo.launch(**launch_options())  # upload size limit, errors shown to the client
