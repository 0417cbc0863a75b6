"""Building blocks: plain ``nn.Module`` networks with no losses and no optimisers."""
