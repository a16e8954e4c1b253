from joint_ere.training.callbacks import TensorBoardCallback, TrainerCallback, ValidationPlotCallback
from joint_ere.training.checkpointer import Checkpointer
from joint_ere.training.learning_rate_schedulers import LearningRateScheduler, LinearWithWarmup, ReduceOnPlateau
from joint_ere.training.moving_average import ExponentialMovingAverage, MovingAverage
from joint_ere.training.optimizers import AdamOptimizer, AdamWOptimizer, Optimizer, SgdOptimizer
from joint_ere.training.trainer import GradientDescentTrainer, Trainer

__all__ = ["AdamOptimizer", "AdamWOptimizer", "Checkpointer", "ExponentialMovingAverage", "GradientDescentTrainer",
           "LearningRateScheduler", "LinearWithWarmup", "MovingAverage", "Optimizer", "ReduceOnPlateau", "SgdOptimizer",
           "TensorBoardCallback", "Trainer", "TrainerCallback", "ValidationPlotCallback"]
