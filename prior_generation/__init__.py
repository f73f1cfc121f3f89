"""Prior generation: a video MLLM describes every training video (paper §3.1-3.2).

``python -m prior_generation generate`` asks a backend (``hf``, ``template``,
``synthetic``, ``vllm``) the key and complete prompts for each (training video, class)
and writes one Parquet row per (video, class, kind) (schema: :mod:`.store`);
``merge`` combines shards; ``build-tiny-model`` saves a tiny random-weight video MLLM.
"""
