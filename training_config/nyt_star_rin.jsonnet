// RIN on NYT* (partial match). NYT's training file (56,195 sentences) is not among ../shared/data: its path comes
// from the data root like every other (JOINT_ERE_DATA/nyt_star/train_triples.json); here the config is checked by
// evaluating on the validation file. Relations: 24 in rel2id.json, some absent from a split.
local lib = import 'lib/common.libsonnet';

lib.base + lib.casrel('nyt_star', 'partial') + {
  model: lib.rin(50 + 50, rounds=3),
}
