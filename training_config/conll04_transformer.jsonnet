// The Crone model on a fine-tuned transformer (issue #3): no shared BiLSTM (the transformer is the shared
// encoder), one NER-specific and one RE-specific BiLSTM layer on top. A character BiLSTM joins the transformer
// (the offline models here are uncased; characters give the tagger the words' case).
//   TRANSFORMER_MODEL=$MINILM_DIR TRANSFORMER_DIM=384 allennlp train training_config/conll04_transformer.jsonnet -s runs/c04_minilm
local lib = import 'lib/common.libsonnet';
local chars_dim = 50;

lib.base + {
  dataset_reader: {type: 'spert_json', token_indexers: lib.transformer_indexers(chars=true)},
  train_data_path: lib.data('conll04/conll04_train.json'),
  validation_data_path: lib.data('conll04/conll04_dev.json'),
  test_data_path: lib.data('conll04/conll04_test.json'),
  evaluate_on_test: false,
  model: lib.crone(lib.transformer_dim + chars_dim, hidden=100, shared=0, ner=1, re=1) + {
    text_field_embedder: lib.transformer_embedder(chars=true),
    label_embedding_dim: 25,
    relation_hidden_dim: 64,
    dropout: 0.1,
  },
  data_loader: {batch_sampler: {type: 'bucket', batch_size: 8}},
  trainer+: lib.transformer_trainer(lr=1e-3, transformer_lr=1e-4, epochs=20, warmup_steps=100),
}
