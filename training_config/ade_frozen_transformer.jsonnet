// Crone 2020's ADE inputs: GloVe + characters + a frozen contextual encoder's learned mix of layers (Crone used
// ELMo; here TRANSFORMER_MODEL, kept in eval mode and never updated). The rest is ade.jsonnet.
//   TRANSFORMER_MODEL=$MINILM_DIR TRANSFORMER_DIM=384 allennlp cross-validate training_config/ade_frozen_transformer.jsonnet -s runs/ade_cv_frozen --folds 10
local lib = import 'lib/common.libsonnet';
local ade = import 'ade.jsonnet';

ade + {
  dataset_reader+: {token_indexers+: lib.transformer_indexers()},
  model+: lib.crone(50 + 50 + lib.transformer_dim, hidden=100, shared=2, ner=1, re=1) + {
    text_field_embedder: {
      token_embedders: lib.glove_and_chars_embedder().token_embedders + {
        transformer: lib.transformer_embedder().token_embedders.transformer + {
          train_parameters: false, last_layer_only: false,
        },
      },
    },
  },
}
