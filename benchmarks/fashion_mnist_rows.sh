# Sourced by the Fashion-MNIST table scripts (train_families_fashion_mnist.sh on the CPU, gpu_train.sh on a GPU):
# the dense ResNet-20 and every family at about 10x fewer conv parameters where the family reaches it on ResNet-20
# (the low-rank family at its floor, rank 1, and at about 2/3 of the dense conv parameters; the shared family at one
# anchor per stage, 3.7x). The multigrid row is the MGIC network at ResNet-20's widths and depth, whose blocks are
# V-cycles (group size 2: its ~10x point on widths 16-64). NAME|FLAGS of python -m leanconv.train, one per row.
FAMILY_ROWS=(
  "resnet20-dense|--model resnet20 --conv dense"
  "resnet20-generated-ring0.1|--model resnet20 --conv generated --ring-size 0.1"
  "resnet20-filter_summary-c10|--model resnet20 --conv filter_summary --compression 10"
  "resnet20-lowrank-rank1|--model resnet20 --conv lowrank --rank 1"
  "resnet20-lowrank-rank5|--model resnet20 --conv lowrank --rank 5"
  "mgic-resnet20-g2|--model mgic_resnet20 --conv multigrid --group-size 2 --coarsest 2"
  "resnet20-shared|--model resnet20 --conv shared"
)
