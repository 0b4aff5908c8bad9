global using Tensor = Mamba4.Tensors.Tensor;
