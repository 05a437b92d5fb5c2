"""Marks: keyed watermarks on generated text, exact detectors, and radioactivity tests.

- `keys`: key files (`load_watermark(path) -> Watermark`, `make_watermark`, `write_key_file`);
- `schemes`: the scheme registry (green-list, Gumbel-max, plugins: `register_scheme`),
  their logits processors, and `Watermark`;
- `detect`: exact tests on text and token streams (`detect_texts`, `TupleScorer`);
- `radioactivity`: closed- and open-model tests of suspect models.

The benchmark (`distilltrace bench marks`) is `distilltrace.bench.marks`: it distils
students with `distilltrace.distill`, which nothing in this package imports.

Kept import-light: submodules load torch and scipy only when used.
"""
