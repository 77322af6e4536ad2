"""The seed question's example, unchanged except for the import."""

import matgrad as torch

A = torch.randn(5, 5, requires_grad=True)
B = torch.randn(5, 5, requires_grad=True)
C = A @ B

print("C.grad_fn:", C.grad_fn)
print("saved tensors are A and B:", C.grad_fn._saved_self is A, C.grad_fn._saved_mat2 is B)
grad_C = torch.randn(5, 5)
grad_A, grad_B = C.grad_fn(grad_C)  # a vector-Jacobian product: grad_C @ B.T, A.T @ grad_C
print("C.grad_fn(grad_C)[0] == grad_C @ B.T:", torch.allclose(grad_A, grad_C @ B.detach().T))
print("C.grad_fn(grad_C)[1] == A.T @ grad_C:", torch.allclose(grad_B, A.detach().T @ grad_C))
print("next_functions:", C.grad_fn.next_functions)
