"""Synthetic card transactions in the Kaggle fraudTrain.csv schema, and a streaming reader
for such files. Pure Python + numpy/pandas: no servers.

- :mod:`datagen.generator`: ``GeneratorConfig``, ``generate_frame``, ``write_csv``,
  ``benchmark_generator``.
- :mod:`datagen.csv_rows`: ``iter_rows`` (plain or gzip), the schema's ``COLUMNS``.
"""
