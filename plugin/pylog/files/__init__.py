"""Log files inside containers, declared by labels: finding, opening and following them."""
