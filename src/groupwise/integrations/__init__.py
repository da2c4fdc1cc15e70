"""Adapters from training frameworks to a function task's ``groupwise.Trial``: each module
imports its framework (an optional extra) and nothing else of groupwise but the trial.

- :mod:`groupwise.integrations.lightning`: ``pip install 'groupwise[lightning]'``
- :mod:`groupwise.integrations.hf`: ``pip install 'groupwise[hf]'``
"""
