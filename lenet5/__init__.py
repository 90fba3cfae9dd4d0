"""lenet5: an exact, fast port of the classic sequential LeNet-5 MNIST trainer."""
__version__ = "0.1.0"
