# Tests and the notebooks that nbval runs use the quick switch: fewer steps and samples, same lessons.
# (`--nbval-current-env` starts the notebook kernels with this process's environment.)
import os

os.environ.setdefault("STYLEDROP_MINI_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
