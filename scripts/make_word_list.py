"""Write keras_sign/spelling/words/english.txt: the most frequent English words of wordfreq (Robyn Speer et al.),
letters a-z only, one `word zipf-frequency` a line, most frequent first.

    pip install wordfreq && python scripts/make_word_list.py --count 20000
"""

import argparse
from pathlib import Path

from wordfreq import top_n_list, zipf_frequency

OUT = Path(__file__).resolve().parents[1] / "keras_sign" / "spelling" / "words" / "english.txt"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20000)
    args = parser.parse_args()
    words = [word for word in top_n_list("en", args.count * 2) if word.isascii() and word.isalpha()][:args.count]
    OUT.write_text("".join(f"{word} {zipf_frequency(word, 'en'):.2f}\n" for word in words), encoding="utf-8")
    print(f"{len(words)} words: {OUT}")


if __name__ == "__main__":
    main()
