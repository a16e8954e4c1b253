// Crone 2020 / Bekoulis 2018 multi-head selection on CoNLL04 (SpERT split), GloVe 50d + character BiLSTM.
// Two shared BiLSTM layers, then one NER-specific and one RE-specific layer (100 per direction).
// Validated on dev; the test split is never read here (`evaluate_on_test` stays false).
//   JOINT_ERE_DATA=../shared/data GLOVE_50D=... allennlp train training_config/conll04.jsonnet -s runs/conll04
local lib = import 'lib/common.libsonnet';
local input_dim = 50 + 50;  // GloVe + character BiLSTM (2 x 25)

lib.base + {
  dataset_reader: {type: 'spert_json', token_indexers: lib.glove_and_chars_indexers},
  train_data_path: lib.data('conll04/conll04_train.json'),
  validation_data_path: lib.data('conll04/conll04_dev.json'),
  test_data_path: lib.data('conll04/conll04_test.json'),
  evaluate_on_test: false,
  model: lib.crone(input_dim, hidden=100, shared=2, ner=1, re=1) + {
    text_field_embedder: lib.glove_and_chars_embedder(),
    label_embedding_dim: 25,
    relation_hidden_dim: 64,
    re_loss_weight: 1.0,
    dropout: 0.5,
  },
}
