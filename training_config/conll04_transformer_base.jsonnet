// conll04_transformer.jsonnet for a 12-layer base model (all-mpnet-base-v2, bert-base-cased): the transformer at
// 5e-5 and 8 epochs, which is about an hour on one core of the 2-core development machine.
//   TRANSFORMER_MODEL=$MPNET_DIR TRANSFORMER_DIM=768 allennlp train training_config/conll04_transformer_base.jsonnet -s runs/c04_mpnet
local lib = import 'lib/common.libsonnet';

(import 'conll04_transformer.jsonnet') + {
  trainer+: lib.transformer_trainer(lr=1e-3, transformer_lr=5e-5, epochs=8, warmup_steps=100),
}
