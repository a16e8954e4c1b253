// RIN on WebNLG with exact match (full entity strings located in the text; NER over BIOES spans), selected on
// the validation split by exact match.
//   JOINT_ERE_DATA=../shared/data GLOVE_50D=... allennlp train training_config/webnlg_rin.jsonnet -s runs/webnlg_rin
local lib = import 'lib/common.libsonnet';

lib.base + lib.casrel('webnlg', 'exact') + {
  model: lib.rin(50 + 50, rounds=3),
}
