"""The ImageNet CGN: BigGAN-deep-256 mechanisms, a U2-Net mask head, names, weights, training."""
