using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/log_softmax.cu: one block per row.
public sealed unsafe partial class CudaBackend
{
    public void LogSoftmaxForward(Tensor x, Tensor y)
    {
        if (x.Shape.Rows == 0) return;
        Launch(Kernels.LogSoftmax.File, Kernels.LogSoftmax.LogSoftmaxForward, x.Shape.Rows, 256, 0, x, y, x.Shape.Last);
    }

    public void LogSoftmaxBackward(Tensor y, Tensor dy, Tensor dx)
    {
        if (y.Shape.Rows == 0) return;
        Launch(Kernels.LogSoftmax.File, Kernels.LogSoftmax.LogSoftmaxBackward, y.Shape.Rows, 256, 0, y, dy, dx, y.Shape.Last);
    }
}
