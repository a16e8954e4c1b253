// conll04_transformer.jsonnet for a 12-layer base model (all-mpnet-base-v2, bert-base-cased): the transformer at
// 5e-5 and 12 epochs, which is about 90 minutes on one core of the 2-core development machine (8 epochs gave
// 0.1 NER and 3.2 RE+ macro less on CoNLL04 dev; RESULTS.md).
//   TRANSFORMER_MODEL=$MPNET_DIR TRANSFORMER_DIM=768 allennlp train training_config/conll04_transformer_base.jsonnet -s runs/c04_mpnet
local lib = import 'lib/common.libsonnet';

(import 'conll04_transformer.jsonnet') + {
  trainer+: lib.transformer_trainer(lr=1e-3, transformer_lr=5e-5, epochs=12, warmup_steps=100),
}
