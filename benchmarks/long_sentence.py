"""
Peak memory and time of `allennlp predict` on one very long sentence (default 5,000 tokens).

    python benchmarks/long_sentence.py [--archive runs/x/model.tar.gz | --config fixtures/tiny.jsonnet] [--tokens 5000]

Without --archive, the config (default: the tests' small model on fixtures/data) is trained for one epoch in a
temp folder first; an untrained model tags most words as entities, so the entity-pair work is near its worst.
The child process reports its own high-water mark (VmHWM, Linux) after the whole command.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = ["Anna", "Lee", "lives", "in", "Paris", ".", "Acme", "Corp", "hired", "John", "Smith", "."]
CHILD = ("import sys; from joint_ere.commands import main; code = main(sys.argv[1:]); "
         "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(code)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive")
    parser.add_argument("--config", default=os.path.join(ROOT, "fixtures", "tiny.jsonnet"))
    parser.add_argument("--tokens", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        archive = args.archive
        if not archive:
            subprocess.run([sys.executable, "-m", "joint_ere", "train", args.config, "-s", os.path.join(temp, "run"),
                            "-o", '{"trainer": {"num_epochs": 1}}'], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            archive = os.path.join(temp, "run", "model.tar.gz")
        sentence = os.path.join(temp, "long.jsonl")
        with open(sentence, "w", encoding="utf-8") as handle:
            handle.write(json.dumps({"tokens": [WORDS[i % len(WORDS)] for i in range(args.tokens)]}) + "\n")
        output = os.path.join(temp, "out.jsonl")
        started = time.perf_counter()
        finished = subprocess.run([sys.executable, "-c", CHILD, "predict", archive, sentence, "--silent",
                                   "--output-file", output], check=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
        with open(output, encoding="utf-8") as handle:
            predicted = json.loads(handle.readline())
    print(json.dumps({"tokens": args.tokens, "predict_command_seconds": round(seconds, 2),
                      "predict_peak_rss_mb": round(int(finished.stdout.split()[-1]) / 1024, 1),
                      "entities": len(predicted["entities"]), "relations": len(predicted["relations"])}, indent=2))


if __name__ == "__main__":
    main()
