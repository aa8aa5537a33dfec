"""``python -m deepnmf ...`` runs the command line (also what ``torchrun -m deepnmf`` starts)."""
from deepnmf.cli.main import main

if __name__ == "__main__":
    main()
