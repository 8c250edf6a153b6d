import subprocess
import sys


def test_data_side_never_imports_torch_or_the_math_stack():
    """triune_data stays light: building or validating a dataset must not import torch (or sympy)."""
    code = (
        "import sys\n"
        "import triune_data.build, triune_data.inspect, triune_data.export, triune_data.hub\n"
        "import triune_data.sources, triune_data.verifiers\n"
        "from triune_data.verifiers import params_json\n"
        "params_json('math', {}); params_json('detection', {})\n"
        "bad = [m for m in ('torch', 'transformers', 'sympy', 'math_verify') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
