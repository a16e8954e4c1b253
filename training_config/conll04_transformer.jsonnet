// The Crone model on a fine-tuned transformer (issue #3): no shared BiLSTM (the transformer is the shared
// encoder), one NER-specific and one RE-specific BiLSTM layer on top.
//   TRANSFORMER_MODEL=$MINILM_DIR TRANSFORMER_DIM=384 allennlp train training_config/conll04_transformer.jsonnet -s runs/c04_minilm
local lib = import 'lib/common.libsonnet';

lib.base + {
  dataset_reader: {type: 'spert_json', token_indexers: lib.transformer_indexers()},
  train_data_path: lib.data('conll04/conll04_train.json'),
  validation_data_path: lib.data('conll04/conll04_dev.json'),
  test_data_path: lib.data('conll04/conll04_test.json'),
  evaluate_on_test: false,
  model: lib.crone(lib.transformer_dim, hidden=100, shared=0, ner=1, re=1) + {
    text_field_embedder: lib.transformer_embedder(),
    label_embedding_dim: 25,
    relation_hidden_dim: 64,
    dropout: 0.1,
  },
  trainer+: lib.transformer_trainer(),
}
