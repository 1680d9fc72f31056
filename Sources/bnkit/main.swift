print("bnkit")
