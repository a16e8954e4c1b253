// RIN on WebNLG* over a fine-tuned transformer instead of GloVe + characters (the paper's RIN with BERT: 90.1
// partial-match F1 on test). TRANSFORMER_MODEL names it (a hub name or a local folder), TRANSFORMER_DIM its size.
//   TRANSFORMER_MODEL=$MINILM_DIR TRANSFORMER_DIM=384 allennlp train training_config/webnlg_star_rin_transformer.jsonnet -s runs/ws_rin_minilm
local lib = import 'lib/common.libsonnet';

(import 'webnlg_star_rin.jsonnet') + {
  dataset_reader+: {token_indexers: lib.transformer_indexers()},
  model+: {
    encoder: lib.bilstm(lib.transformer_dim, 100, 1),
    text_field_embedder: lib.transformer_embedder(),
  },
  trainer+: lib.transformer_trainer(lr=1e-3, transformer_lr=5e-5, epochs=30, warmup_steps=300),
}
