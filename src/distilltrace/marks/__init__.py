"""Marks: keyed watermarks on generated text, exact detectors, and radioactivity tests.

- `keys`: key files (`load_watermark(path) -> Watermark`, `make_watermark`, `write_key_file`);
- `schemes`: green-list and Gumbel-max schemes as logits processors (`Watermark`);
- `detect`: exact tests on text and token streams (`detect_texts`, `TupleScorer`);
- `radioactivity`: closed- and open-model tests of suspect models;
- `bench`: the `distilltrace bench marks` benchmark.

Kept import-light: submodules load torch and scipy only when used.
"""
