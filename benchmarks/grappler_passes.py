"""Does any TensorFlow graph-optimisation (grappler) pass cost the first epoch more than it gives back?

    python benchmarks/grappler_passes.py

Runs the default job shortened to 5 epochs (`keras-sign train --epochs 5 --checkpoint-every 100`,
TensorFlow) once with every pass on and once with each pass below turned off, each in a fresh
process, and prints the first epoch's seconds (tracing and graph optimisation) beside the mean of
the later epochs' (the steps the passes speed up).
"""

import subprocess
import sys
import tempfile

PASSES = ("layout_optimizer", "constant_folding", "arithmetic_optimization", "dependency_optimization",
          "function_optimization", "loop_optimization", "remapping")

ONE_RUN = """
import csv, sys
import tensorflow as tf
if sys.argv[2]:
    tf.config.optimizer.set_experimental_options({sys.argv[2]: False})
from click.testing import CliRunner
from keras_sign.cli import cli
result = CliRunner().invoke(cli, ["train", "--out", sys.argv[1], "--epochs", "5", "--checkpoint-every", "100"])
assert result.exit_code == 0, result.output
seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(open(sys.argv[1] + "/history.csv"))]
print(seconds[0], sum(seconds[1:]) / len(seconds[1:]))
"""


def main():
    print("| pass off | first epoch s | later epochs s |\n| --- | ---: | ---: |")
    for off in ("", *PASSES):
        with tempfile.TemporaryDirectory() as folder:
            output = subprocess.run([sys.executable, "-c", ONE_RUN, f"{folder}/run", off], capture_output=True,
                                    text=True, check=True).stdout
        first, later = (float(value) for value in output.split()[-2:])
        print(f"| {off or '(none)'} | {first:.2f} | {later:.3f} |", flush=True)


if __name__ == "__main__":
    main()
