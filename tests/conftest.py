import os

# one BLAS thread: the tests use small matrices, and a threaded BLAS on a busy 2-core machine
# turns microsecond LAPACK calls into milliseconds (set before anything imports NumPy)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
