"""Tuned kernel configs shipped with tritonconv: JSON data, one file per GPU model and Triton version.

Written by ``python -m tritonconv.tune --ship``; never edited by hand (see tritonconv.cache).
"""
