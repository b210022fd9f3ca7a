"""The model build pipeline (optional extra ``train``: torch, transformers, optimum).

``manage.py train_model`` reads the department's signed reports (:mod:`.corpus`), trains a byte-level
BPE tokenizer (:mod:`.tokenizer`) and a small GPT-2-style decoder from scratch (:mod:`.trainer`),
exports it to ONNX with optimum and optimises the graph (:mod:`.export`), evaluates it on held-out
signed reports with the discrepancy engine (:mod:`.evaluate`), writes the model card and registers the
version (:mod:`.pipeline`). ``manage.py register_model`` brings a hospital's own model in
(:mod:`.external`). Nothing here is imported by the portal or the worker: serving needs no torch.
"""
